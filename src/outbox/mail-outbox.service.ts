import { Inject, Injectable } from '@nestjs/common';
import { EntityManager, In, LessThanOrEqual, MoreThan, QueryResult } from 'typeorm';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { deleteInBatches } from '../common/delete-in-batches';
import { TransactionRunner } from '../common/transaction-runner';
import { OutboxMessage, OutboxMessageKind } from './outbox-message.entity';
import { AuthMetrics } from '../metrics/auth-metrics';

/** Mail a stranger can trigger, capped per account; each cap counts every kind in its family. */
export type CappedKind = 'password-reset' | 'email-verification' | 'email-change-requested';

/** Every message carrying a verification link counts against the verification cap, the welcome too. */
const CAP_FAMILIES: Record<CappedKind, OutboxMessageKind[]> = {
  'password-reset': ['password-reset'],
  'email-verification': ['welcome', 'email-verification'],
  // One notice to the old address per change request that mails, whichever the new address got.
  'email-change-requested': ['email-change-requested'],
};

const HOUR_MS = 3_600_000;

/**
 * How long a sent message stays in the outbox: long enough to answer "did my email go out?" and far
 * longer than the hour the caps count; after it, only the audit log remembers the message.
 */
export const SENT_RETENTION_MS = 7 * 24 * HOUR_MS;

/** Who a message goes to. */
export interface MailRecipient {
  /** Null for a message to a deleted account's address (see `markSent`). */
  id: number | null;
  email: string;
}

/**
 * The outbox table: messages are written inside the transaction of the change that causes them, and
 * claimed, marked sent or failed by `OutboxWorker`. All times come from the module's clock.
 */
@Injectable()
export class MailOutbox {
  constructor(
    private readonly transactions: TransactionRunner,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
    metrics: AuthMetrics,
  ) {
    metrics.countOutboxWith(() => this.countUndelivered());
  }

  /** Messages not yet delivered and messages given up on, for the metrics (one grouped count on the status index). */
  private async countUndelivered(): Promise<{ pending: number; dead: number }> {
    const rows: { status: string; count: string | number }[] = await this.transactions.run((manager) =>
      manager
        .getRepository(OutboxMessage)
        .createQueryBuilder('message')
        .select('message.status', 'status')
        .addSelect('COUNT(*)', 'count')
        .where('message.status IN (:...statuses)', { statuses: ['pending', 'dead'] })
        .groupBy('message.status')
        .getRawMany(),
    );
    const count = (status: string) => Number(rows.find((row) => row.status === status)?.count ?? 0);
    return { pending: count('pending'), dead: count('dead') };
  }

  /** Writes a message in the caller's transaction; it is due at once. */
  async enqueue(manager: EntityManager, kind: OutboxMessageKind, recipient: MailRecipient): Promise<void> {
    const now = this.config.clock();
    await manager.getRepository(OutboxMessage).insert({
      kind,
      userId: recipient.id,
      recipient: recipient.email,
      status: 'pending',
      attempts: 0,
      nextAttemptAt: now,
      lockedUntil: null,
      lastError: null,
      createdAt: now,
      sentAt: null,
    });
  }

  /**
   * Writes the message unless the account already had `perHour` of its family within the last hour;
   * returns whether it did. The caller holds a lock on the account (or runs serialised, on SQLite), so
   * concurrent requests cannot both see room for one more.
   */
  async enqueueWithinCap(manager: EntityManager, kind: CappedKind, recipient: MailRecipient & { id: number }, perHour: number): Promise<boolean> {
    const since = new Date(this.config.clock().getTime() - HOUR_MS);
    const recent = await manager
      .getRepository(OutboxMessage)
      .countBy({ userId: recipient.id, kind: In(CAP_FAMILIES[kind]), createdAt: MoreThan(since) });
    if (recent >= perHour) return false;
    await this.enqueue(manager, kind, recipient);
    return true;
  }

  /**
   * Claims up to `limit` due messages for `leaseMs` and counts the attempt. On PostgreSQL, `SKIP LOCKED`
   * lets several instances poll at once without waiting on or taking each other's rows; the lease keeps a
   * claimed message from being claimed again while it is being sent, and frees it if its worker dies.
   */
  claimDue(limit: number, leaseMs: number): Promise<OutboxMessage[]> {
    const now = this.config.clock();
    const lockedUntil = new Date(now.getTime() + leaseMs);
    return this.transactions.run(async (manager) => {
      const table = manager.connection.driver.escape(manager.connection.getMetadata(OutboxMessage).tableName);
      const [sql, parameters] = manager.connection.driver.escapeQueryWithParameters(
        `UPDATE ${table} SET attempts = attempts + 1, locked_until = :lockedUntil
         WHERE id IN (
           SELECT id FROM ${table}
           WHERE status = 'pending' AND next_attempt_at <= :now AND (locked_until IS NULL OR locked_until <= :now)
           ORDER BY next_attempt_at, id
           LIMIT :limit
           ${this.transactions.isPostgres ? 'FOR UPDATE SKIP LOCKED' : ''}
         )
         RETURNING id`,
        { now, lockedUntil, limit },
      );
      // The query runner's structured result holds RETURNING rows the same way on both drivers.
      const claimed = (await manager.queryRunner!.query(sql, parameters, true)) as QueryResult<{ id: number | string }>;
      const ids = claimed.records.map((row) => Number(row.id));
      if (ids.length === 0) return [];
      return manager.getRepository(OutboxMessage).find({ where: { id: In(ids) }, order: { id: 'ASC' } });
    });
  }

  /** Deletes messages sent more than `SENT_RETENTION_MS` ago; dead ones stay for someone to look at. */
  pruneSent(): Promise<number> {
    const sentBefore = new Date(this.config.clock().getTime() - SENT_RETENTION_MS);
    return deleteInBatches(this.transactions, OutboxMessage, { status: 'sent', sentAt: LessThanOrEqual(sentBefore) });
  }

  /**
   * Records a delivery. False when the claim was lost (the lease ran out and another worker took it).
   * A message of no account (a deleted one's goodbye) is deleted instead: it was the last row holding
   * that address, and the account's erasure is complete only once it is gone.
   */
  markSent(message: OutboxMessage): Promise<boolean> {
    if (message.userId === null) return this.forget(message);
    return this.finishAttempt(message, { status: 'sent', sentAt: this.config.clock(), lockedUntil: null, lastError: null });
  }

  /** Records a failed attempt; the message is tried again at `retryAt`. */
  markForRetry(message: OutboxMessage, error: string, retryAt: Date): Promise<boolean> {
    return this.finishAttempt(message, { nextAttemptAt: retryAt, lockedUntil: null, lastError: error });
  }

  /** Records the last failed attempt: the message stays in the table, `dead`, for someone to look at. */
  markDead(message: OutboxMessage, error: string): Promise<boolean> {
    if (message.userId === null) return this.forget(message);
    return this.finishAttempt(message, { status: 'dead', lockedUntil: null, lastError: error });
  }

  /** Deletes a finished message of no account, under the same claim rule as `finishAttempt`. */
  private async forget(message: OutboxMessage): Promise<boolean> {
    const result = await this.transactions.run((manager) =>
      manager.getRepository(OutboxMessage).delete({ id: message.id, attempts: message.attempts, status: 'pending' }),
    );
    return result.affected === 1;
  }

  /** Only the claim that made this attempt may finish it: `attempts` identifies the claim. */
  private async finishAttempt(message: OutboxMessage, changes: Partial<OutboxMessage>): Promise<boolean> {
    const result = await this.transactions.run((manager) =>
      manager
        .getRepository(OutboxMessage)
        .update({ id: message.id, attempts: message.attempts, status: 'pending' }, changes),
    );
    return result.affected === 1;
  }
}
