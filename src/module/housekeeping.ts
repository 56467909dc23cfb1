import { Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { MailOutbox } from '../outbox/mail-outbox.service';
import { SessionsService } from '../sessions/sessions.service';
import { AuditService } from '../audit/audit.service';
import { EmailChangeTokensService } from '../one-time-tokens/email-change-tokens.service';

const INTERVAL_MS = 60 * 60 * 1000;

/**
 * Keeps the module's tables from growing without bound: hourly, on every instance (each deletion is
 * idempotent, so instances need no coordination), ended sessions, old sent mail, audit events past `auditRetentionDays` and used or expired email changes go.
 */
@Injectable()
export class Housekeeping implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(Housekeeping.name);
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly sessions: SessionsService,
    private readonly outbox: MailOutbox,
    private readonly auditLog: AuditService,
    private readonly emailChanges: EmailChangeTokensService,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => {
      this.running ??= this.run().finally(() => (this.running = undefined));
    }, INTERVAL_MS);
    this.timer.unref();
  }

  /** Before the database closes (`onModuleDestroy` comes before TypeORM's shutdown). */
  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One round; a failing task is logged and the next one still runs. */
  async run(): Promise<void> {
    const tasks: [string, () => Promise<number>][] = [
      ['ended sessions', () => this.sessions.prune()],
      ['sent mail', () => this.outbox.pruneSent()],
      ['audit events past their retention', () => this.auditLog.prune()],
      ['used and expired email changes', () => this.emailChanges.prune()],
    ];
    for (const [what, task] of tasks) {
      try {
        const deleted = await task();
        if (deleted > 0) this.logger.log(`deleted ${deleted} ${what}`);
      } catch (error) {
        this.logger.error(`could not delete ${what}: ${(error as Error).message}`, (error as Error).stack);
      }
    }
  }
}
