import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, LessThan, Repository } from 'typeorm';
import { deleteInBatches } from '../common/delete-in-batches';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { AuthEvent, AuthEventDetails } from './auth-event.entity';

/** The event types this module writes (SPEC.md, "Roles, admin API, audit log"). */
export const AUTH_EVENT_TYPES = [
  'signup',
  'signin',
  'signin_failed',
  'signout',
  'session_revoked',
  'refresh_reused',
  'password_changed',
  'password_reset',
  'email_verified',
  'mfa_enabled',
  'mfa_disabled',
  'recovery_code_used',
  'recovery_codes_replaced',
  'user_locked',
  'user_unlocked',
  'role_granted',
  'role_revoked',
  'profile_updated',
  'oidc_signin',
  'identity_linked',
  'identity_unlinked',
  'email_change_requested',
  'email_changed',
  'account_deleted',
] as const;

export type AuthEventType = (typeof AUTH_EVENT_TYPES)[number];

/** Where a request came from, as the event records it. */
export interface AuditClient {
  /** The client address after the trusted-proxy rules (`request.ip`). */
  ip: string | null;
  userAgent: string | null;
}

export interface NewAuthEvent {
  type: AuthEventType;
  userId: number | null;
  sessionId?: string | null;
  client: AuditClient | null;
  details?: AuthEventDetails;
}

export interface EventFilter {
  userId?: number;
  type?: string;
  from?: Date;
  to?: Date;
  /** The id of the last event of the previous page: this page has older ones only. */
  before?: number;
  limit: number;
}

export interface EventPage {
  items: AuthEvent[];
  /** Pass as `cursor` for the next page; null on the last. */
  nextCursor: string | null;
}

const USER_AGENT_MAX = 512;
const IP_MAX = 45;
/** Any constant: the key of the advisory lock that orders event ids by commit (see `record`). */
const EVENT_ORDER_LOCK = 7_316_204;

/**
 * The audit log: `record` writes an event in the caller's transaction, `recordAlone` in one of its own
 * (a failed sign-in, which changes nothing else). Pages are newest first, keyed by id.
 */
@Injectable()
export class AuditService {
  constructor(
    @InjectRepository(AuthEvent) private readonly events: Repository<AuthEvent>,
    private readonly transactions: TransactionRunner,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  /**
   * Writes the event in the transaction of `manager`. Call it as the transaction's last statement.
   *
   * On PostgreSQL ids come from a sequence when the row is inserted, not when it commits, so without
   * more a transaction could commit an id lower than one a reader has already paged past, and cursor
   * paging would skip it. A transaction-scoped advisory lock taken just before the insert and held to
   * the commit makes ids commit in order: every event older than one a reader has seen is visible to it.
   * It is held for the insert and the commit only, and no other lock is waited for meanwhile (hence
   * "last statement"), so it cannot deadlock. The lock and the insert are one statement (one round trip
   * on every audited change): the materialized CTE takes the lock before the row it feeds to the INSERT
   * exists, so before the row's id is drawn. SQLite commits one transaction at a time anyway.
   */
  async record(manager: EntityManager, event: NewAuthEvent): Promise<void> {
    const row = {
      type: event.type,
      userId: event.userId,
      sessionId: event.sessionId ?? null,
      ip: event.client?.ip?.slice(0, IP_MAX) ?? null,
      userAgent: event.client?.userAgent?.slice(0, USER_AGENT_MAX) ?? null,
      createdAt: this.config.clock(),
      details: event.details && Object.keys(event.details).length > 0 ? event.details : null,
    };
    if (!this.transactions.isPostgres) {
      await manager.getRepository(AuthEvent).insert(row);
      return;
    }
    const table = manager.connection.driver.escape(manager.connection.getMetadata(AuthEvent).tableName);
    await manager.query(
      `WITH event_order AS MATERIALIZED (SELECT pg_advisory_xact_lock($1))
       INSERT INTO ${table} (type, user_id, session_id, ip, user_agent, created_at, details)
       SELECT $2::varchar, $3::integer, $4::varchar, $5::varchar, $6::varchar, $7::timestamptz, $8::text FROM event_order`,
      [EVENT_ORDER_LOCK, row.type, row.userId, row.sessionId, row.ip, row.userAgent, row.createdAt, row.details && JSON.stringify(row.details)],
    );
  }

  /** An event that records an attempt, not a change: in a transaction of its own. */
  recordAlone(event: NewAuthEvent): Promise<void> {
    return this.transactions.run((manager) => this.record(manager, event));
  }

  /** One page of events, newest first, matching every filter given. */
  async page(filter: EventFilter): Promise<EventPage> {
    const query = this.events.createQueryBuilder('event');
    query.where('1 = 1');
    if (filter.userId !== undefined) query.andWhere('event.userId = :userId', { userId: filter.userId });
    if (filter.type !== undefined) query.andWhere('event.type = :type', { type: filter.type });
    if (filter.from !== undefined) query.andWhere('event.createdAt >= :from', { from: filter.from });
    if (filter.to !== undefined) query.andWhere('event.createdAt < :to', { to: filter.to });
    if (filter.before !== undefined) query.andWhere('event.id < :before', { before: filter.before });
    const rows = await query.orderBy('event.id', 'DESC').limit(filter.limit + 1).getMany();
    const items = rows.slice(0, filter.limit);
    return { items, nextCursor: rows.length > filter.limit ? String(items[items.length - 1].id) : null };
  }

  /**
   * For a deleted account, in the transaction of its deletion: its events stay for their retention, but
   * without where they came from (client address, user agent) and without any address in their details.
   * Events an admin made on other accounts lose the admin's client address too. Call it before `record`.
   */
  async anonymize(manager: EntityManager, userId: number): Promise<void> {
    const events = manager.getRepository(AuthEvent);
    await events.update({ userId }, { ip: null, userAgent: null });
    // Details are JSON text (`simple-json`: no spaces), so an actor is found with LIKE on both drivers.
    for (const pattern of [`%"actor_id":${userId},%`, `%"actor_id":${userId}}%`]) {
      await events.createQueryBuilder().update().set({ ip: null, userAgent: null }).where('details LIKE :pattern', { pattern }).execute();
    }
    // No event type writes an email today; one that ever does must not keep it past the account.
    const withAddresses = await events.createQueryBuilder('event').where('event.userId = :userId', { userId }).andWhere("event.details LIKE '%@%'").getMany();
    for (const event of withAddresses) {
      const kept = Object.entries(event.details ?? {}).filter(([, value]) => !JSON.stringify(value).includes('@'));
      await events.update({ id: event.id }, { details: kept.length > 0 ? Object.fromEntries(kept) : null });
    }
  }

  /** Whether the account with this id was deleted (within the audit retention): its tokens answer 401, not 404. */
  wasDeleted(userId: number): Promise<boolean> {
    return this.events.existsBy({ userId, type: 'account_deleted' });
  }

  /** Every event of the user, oldest first (the data export). */
  allOf(userId: number): Promise<AuthEvent[]> {
    return this.events.find({ where: { userId }, order: { id: 'ASC' } });
  }

  /** Deletes events older than the retention period, in batches; `Housekeeping` runs it hourly. */
  prune(): Promise<number> {
    const cutoff = new Date(this.config.clock().getTime() - this.config.auditRetentionDays * 24 * 3600 * 1000);
    return deleteInBatches(this.transactions, AuthEvent, { createdAt: LessThan(cutoff) });
  }
}
