import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { MAIL_COMPOSER, type MailComposer } from './mail-composer';
import { MAIL_SEND_TIMEOUT_MS, MailSender } from './mail-sender';
import { MailOutbox } from './mail-outbox.service';
import type { OutboxMessage } from './outbox-message.entity';

/** Longer than the slowest send, so no other worker claims a message that is still on its way. */
const CLAIM_LEASE_MS = 2 * MAIL_SEND_TIMEOUT_MS;

/** Messages being sent at once by one instance; a poll claims only as many as there is room for. */
const MAX_IN_FLIGHT = 10;

/** Wait before the next attempt after `failedAttempts` failures: doubling from `initialMs`, capped at `maxMs`. */
export function retryDelayMs(failedAttempts: number, initialMs: number, maxMs: number): number {
  return Math.min(initialMs * 2 ** Math.max(0, failedAttempts - 1), maxMs);
}

/**
 * An error as one short line fit for the log and the outbox: transport errors can span lines, and an SMTP
 * server may quote the recipient, which the log names by user id only.
 */
function describeError(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const oneLine = text.replace(/\s+/g, ' ').replace(/[^\s<>@"']+@[^\s<>@"']+/g, '[address]').trim();
  return oneLine.slice(0, 500) || 'unknown error';
}

/**
 * Sends what the outbox holds, inside the app: polls every `mail.pollIntervalMs`, and at once when this
 * instance has just written a message (`wake`). A failed attempt is retried with exponential backoff;
 * after `mail.maxAttempts` the message is marked dead and kept. Requests never wait for any of this.
 *
 * Delivery is at least once: a message is marked sent only after the server accepted it, so a crash
 * between the two sends it again when its lease runs out. Logs name the message, never its content.
 */
@Injectable()
export class OutboxWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('MailOutbox');
  private active = false;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private wokenWhilePolling = false;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly outbox: MailOutbox,
    @Inject(MAIL_COMPOSER) private readonly content: MailComposer,
    private readonly mailer: MailSender,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.active = true;
    this.schedule(0);
  }

  /** Stops polling and waits for the sends in flight, so nothing touches the database once it closes. */
  async onModuleDestroy(): Promise<void> {
    this.active = false;
    clearTimeout(this.timer);
    await this.polling;
    await Promise.all(this.inFlight);
  }

  /** Looks for due messages now rather than at the next poll; called once a message is committed. */
  wake(): void {
    if (!this.active) return;
    if (this.polling) {
      this.wokenWhilePolling = true;
      return;
    }
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.startPoll(), delayMs);
  }

  private startPoll(): void {
    this.timer = undefined;
    this.wokenWhilePolling = false;
    this.polling = this.claimAndSend()
      .catch((error: unknown) => {
        this.logger.error(`outbox poll failed: ${describeError(error)}`);
        return false;
      })
      .then((filledRoom) => {
        this.polling = undefined;
        if (!this.active) return;
        const moreMayBeDue = this.wokenWhilePolling || (filledRoom && this.inFlight.size < MAX_IN_FLIGHT);
        this.schedule(moreMayBeDue ? 0 : this.config.mail.pollIntervalMs);
      });
  }

  /** Claims as many due messages as there is room for and starts sending them; true when it filled the room. */
  private async claimAndSend(): Promise<boolean> {
    const room = MAX_IN_FLIGHT - this.inFlight.size;
    if (room <= 0) return false;
    const claimed = await this.outbox.claimDue(room, CLAIM_LEASE_MS);
    for (const message of claimed) {
      const sending: Promise<void> = this.deliver(message).finally(() => {
        this.inFlight.delete(sending);
        // More may be due than there was room for: look again now that there is.
        if (claimed.length === room) this.wake();
      });
      this.inFlight.add(sending);
    }
    return claimed.length === room;
  }

  /** Never rejects: one message's trouble must not touch the others. */
  private async deliver(message: OutboxMessage): Promise<void> {
    const { maxAttempts, retryInitialDelayMs, retryMaxDelayMs } = this.config.mail;
    const tag = `id=${message.id} kind=${message.kind} user_id=${message.userId} attempt=${message.attempts}/${maxAttempts}`;
    let superseded = false;
    const failure = await this.send(message).then((sent) => {
      superseded = !sent;
      return null;
    }, describeError);
    let recorded: boolean;
    try {
      if (failure === null) {
        recorded = await this.outbox.markSent(message);
        this.logger.log(`${superseded ? 'mail superseded, not sent' : 'mail sent'} ${tag}`);
      } else if (message.attempts >= maxAttempts) {
        recorded = await this.outbox.markDead(message, failure);
        this.logger.error(`mail dead ${tag}: ${failure}`);
      } else {
        const delayMs = retryDelayMs(message.attempts, retryInitialDelayMs, retryMaxDelayMs);
        recorded = await this.outbox.markForRetry(message, failure, new Date(this.config.clock().getTime() + delayMs));
        this.logger.warn(`mail failed ${tag} retry_in_ms=${delayMs}: ${failure}`);
      }
    } catch (error) {
      // The claim's lease runs out and the message is tried again: at least once, never lost.
      this.logger.error(`mail outcome not recorded ${tag}: ${describeError(error)}`);
      return;
    }
    if (!recorded) this.logger.warn(`mail outcome not recorded ${tag}: its lease ran out and another worker claimed it`);
  }

  /** False when the composer said the message is no longer needed. */
  private async send(message: OutboxMessage): Promise<boolean> {
    const content = await this.content.compose(message);
    if (content === null) return false;
    await this.mailer.send({ to: message.recipient, ...content });
    return true;
  }
}
