import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { createHmac, hkdfSync, randomUUID } from 'node:crypto';
import { EntityManager, FindOptionsWhere, IsNull, LessThanOrEqual, MoreThan, Not, Repository } from 'typeorm';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { deleteInBatches } from '../common/delete-in-batches';
import { newOpaqueToken, sha256Hex } from '../common/opaque-tokens';
import { TransactionRunner } from '../common/transaction-runner';
import { User } from '../users/user.entity';
import { UserChanges } from '../users/user-changes';
import { RefreshToken } from './refresh-token.entity';
import { Session } from './session.entity';

/** Where a session is used from, as recorded on it. */
export interface SessionClient {
  userAgent: string | null;
  ip: string | null;
}

/** How a session was signed in (NIST SP 800-63B assurance level, RFC 8176 methods); refresh keeps it. */
export interface SessionLevel {
  aal: 'aal1' | 'aal2';
  amr: string[];
}

export const PASSWORD_ONLY: SessionLevel = { aal: 'aal1', amr: ['pwd'] };
export const PASSWORD_AND_OTP: SessionLevel = { aal: 'aal2', amr: ['pwd', 'otp'] };
/** Signed in through an OpenID Connect provider: `aal1` whatever the provider claims about its own checks. */
export const OIDC_ONLY: SessionLevel = { aal: 'aal1', amr: ['oidc'] };
export const OIDC_AND_OTP: SessionLevel = { aal: 'aal2', amr: ['oidc', 'otp'] };

export interface StartedSession extends SessionLevel {
  sessionId: string;
  refreshToken: string;
}

/** What presenting a refresh token led to. */
export type Rotation =
  /** A new refresh token for the session (`repeated`: the same one an earlier, racing request got). */
  | ({ outcome: 'rotated'; sessionId: string; user: User; refreshToken: string; repeated: boolean } & SessionLevel)
  /** A token spent longer ago than the grace window: the session has just been revoked. */
  | { outcome: 'reused'; sessionId: string; userId: number }
  /** Unknown, expired, or of a revoked session. */
  | { outcome: 'invalid' };

/** What the caller of `rotate` decides about a presented token. */
export interface RotationChecks {
  /** Throws to refuse the token's user (locked, unverified): nothing has been written yet. */
  admit(user: User): void;
  /** Writes what goes with the revocation a reused token causes (its audit event), in its transaction. */
  onReuse(manager: EntityManager, reuse: Extract<Rotation, { outcome: 'reused' }>): Promise<void>;
}

/** The shape of `randomUUID()`, the only session ids there are. */
const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `value` can be a session id; anything else is unknown without asking the database. */
export function isSessionId(value: unknown): value is string {
  return typeof value === 'string' && SESSION_ID.test(value);
}

const USER_AGENT_MAX = 512;
const IP_MAX = 45;
/**
 * Live sessions one user may have; a sign-in beyond it ends the least recently used. Bounds the rows a
 * script signing in over and over with a known password can pile up, and the session list's length.
 */
export const MAX_SESSIONS_PER_USER = 100;
/**
 * How old a session's own sign-in may be for what needs a fresh one instead of a password: an account
 * without a password changing its email or deleting itself, and linking a provider (SPEC.md).
 */
export const RECENT_SIGNIN_SECONDS = 5 * 60;

/**
 * Sessions and their refresh tokens. A refresh token is spent by its first use and replaced; every
 * token a session was given is kept (as a SHA-256) until it would have expired, so an old one presented
 * again is recognised. Revoking a session is announced through `UserChanges` once committed, which drops
 * the access check's cached copy: the session's access tokens stop working at once.
 */
@Injectable()
export class SessionsService {
  /**
   * Keys the successor of a refresh token: HMAC(key, token). The successor can be given again to a
   * request racing the first one without ever being stored, and only someone holding the spent token
   * (and the key) can compute it. Derived from the JWT secret, so there is no second secret to manage.
   */
  private readonly successorKey: Buffer;

  constructor(
    @InjectRepository(Session) private readonly sessions: Repository<Session>,
    private readonly transactions: TransactionRunner,
    private readonly changes: UserChanges,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {
    this.successorKey = Buffer.from(hkdfSync('sha256', config.jwtKey.export(), '', 'refresh token successor', 32));
  }

  /**
   * The user, and whether `sessionId` is one of their sessions that is neither revoked nor expired at
   * `now`, in one round trip: the access check runs it on every guarded request its cache cannot answer.
   */
  async findUserWithSession(id: number, sessionId: string, now: Date): Promise<{ user: User; sessionLive: boolean } | null> {
    const { entities, raw } = await this.sessions.manager
      .getRepository(User)
      .createQueryBuilder('user')
      .leftJoin(
        Session,
        'session',
        'session.id = :sessionId AND session.userId = user.id AND session.revokedAt IS NULL AND session.expiresAt > :now',
        { sessionId, now },
      )
      .addSelect('session.id', 'live_session_id')
      .where('user.id = :id', { id })
      .getRawAndEntities<{ live_session_id: string | null }>();
    if (entities.length === 0) return null;
    return { user: entities[0], sessionLive: raw[0].live_session_id !== null };
  }

  /**
   * Opens a session for the user in the caller's transaction and returns its first refresh token. When
   * the user already has `MAX_SESSIONS_PER_USER` live sessions, the least recently used end.
   */
  async start(manager: EntityManager, userId: number, client: SessionClient, level: SessionLevel = PASSWORD_ONLY): Promise<StartedSession> {
    const started = await this.open(manager, userId, null, client, level);
    if (!started) throw new Error(`no account ${userId} to open a session for`);
    return started;
  }

  /**
   * `start`, for a sign-in checked against the account as it was read before: null, and nothing written,
   * when its token version is no longer `tokenVersion` (a password change or reset committed since; it
   * ends every session, and one opened against the old password must not slip in after it). On
   * PostgreSQL the account's row is locked, so a change cannot commit in between, by the statement that
   * opens the session.
   */
  startAtVersion(manager: EntityManager, userId: number, tokenVersion: number, client: SessionClient, level: SessionLevel): Promise<StartedSession | null> {
    return this.open(manager, userId, tokenVersion, client, level);
  }

  private async open(manager: EntityManager, userId: number, tokenVersion: number | null, client: SessionClient, level: SessionLevel): Promise<StartedSession | null> {
    const now = this.config.clock();
    const refreshToken = newOpaqueToken();
    const session: Session = {
      id: randomUUID(),
      userId,
      createdAt: now,
      lastUsedAt: now,
      expiresAt: this.expiryFrom(now),
      revokedAt: null,
      aal: level.aal,
      amr: level.amr.join(' '),
      ...clientColumns(client),
    };
    const evicted = this.transactions.isPostgres
      ? await this.openInOneStatement(manager, session, sha256Hex(refreshToken), tokenVersion)
      : await this.openStatementByStatement(manager, session, sha256Hex(refreshToken), tokenVersion);
    if (evicted === null) return null;
    if (evicted > 0) this.transactions.afterCommit(manager, () => this.changes.notify(userId));
    return { sessionId: session.id, refreshToken, ...level };
  }

  /**
   * `open`'s writes, statement by statement (SQLite, whose transactions run one at a time: the version read
   * needs no lock): revoke the live sessions past the newest MAX_SESSIONS_PER_USER - 1 (none, almost
   * always), insert the session and its first refresh token. Returns how many sessions were revoked, or
   * null when the token version is not `tokenVersion`.
   */
  private async openStatementByStatement(manager: EntityManager, session: Session, tokenHash: string, tokenVersion: number | null): Promise<number | null> {
    if (tokenVersion !== null) {
      const account = await manager.getRepository(User).findOne({ select: { id: true, tokenVersion: true }, where: { id: session.userId } });
      if (account?.tokenVersion !== tokenVersion) return null;
    }
    const sessions = manager.getRepository(Session);
    const beyondCap = sessions
      .createQueryBuilder('live')
      .subQuery()
      .select('live.id')
      .from(Session, 'live')
      .where('live.userId = :userId AND live.revokedAt IS NULL AND live.expiresAt > :now')
      .orderBy('live.lastUsedAt', 'DESC')
      .addOrderBy('live.createdAt', 'DESC')
      .offset(MAX_SESSIONS_PER_USER - 1)
      .getQuery();
    const evicted = await sessions
      .createQueryBuilder()
      .update()
      .set({ revokedAt: session.createdAt })
      .where(`id IN ${beyondCap}`, { userId: session.userId, now: session.createdAt })
      .execute();
    await sessions.insert(session);
    await manager.getRepository(RefreshToken).insert({ tokenHash, sessionId: session.id, createdAt: session.createdAt, spentAt: null });
    return evicted.affected ?? 0;
  }

  /**
   * The same in one round trip on PostgreSQL (data-modifying CTEs): a sign-in's transaction is mostly
   * waiting on round trips. `account` locks the user's row (`FOR UPDATE`, which waits for a password
   * change in progress and then reads the row as it committed) and is empty when the token version moved
   * on; every write hangs off it, so then none happens. The eviction reads the sessions as they were
   * before the statement, so the new session is never among those it ends.
   */
  private async openInOneStatement(manager: EntityManager, session: Session, tokenHash: string, tokenVersion: number | null): Promise<number | null> {
    const users = this.tableOf(manager, User);
    const sessions = this.tableOf(manager, Session);
    const tokens = this.tableOf(manager, RefreshToken);
    const versioned = tokenVersion !== null;
    const [row] = (await manager.query(
      `WITH account AS MATERIALIZED (
         SELECT id FROM ${users} WHERE id = $2::integer${versioned ? ' AND token_version = $11::integer FOR UPDATE' : ''}
       ), evicted AS (
         UPDATE ${sessions} SET revoked_at = $1::timestamptz
         WHERE id IN (
           SELECT id FROM ${sessions}
           WHERE user_id = $2::integer AND revoked_at IS NULL AND expires_at > $1::timestamptz
           ORDER BY last_used_at DESC, created_at DESC OFFSET $3::integer
         ) AND EXISTS (SELECT 1 FROM account)
         RETURNING id
       ), opened AS (
         INSERT INTO ${sessions} (id, user_id, created_at, last_used_at, expires_at, revoked_at, aal, amr, user_agent, ip)
         SELECT $4::varchar, id, $1::timestamptz, $1::timestamptz, $5::timestamptz, NULL, $6::varchar, $7::varchar, $8::varchar, $9::varchar FROM account
         RETURNING id
       ), first_token AS (
         INSERT INTO ${tokens} (token_hash, session_id, created_at, spent_at)
         SELECT $10::varchar, id, $1::timestamptz, NULL FROM opened
       )
       SELECT (SELECT count(*)::integer FROM account) AS admitted, (SELECT count(*)::integer FROM evicted) AS evicted`,
      [
        session.createdAt,
        session.userId,
        MAX_SESSIONS_PER_USER - 1,
        session.id,
        session.expiresAt,
        session.aal,
        session.amr,
        session.userAgent,
        session.ip,
        tokenHash,
        ...(versioned ? [tokenVersion] : []),
      ],
    )) as { admitted: number; evicted: number }[];
    return row.admitted === 1 ? row.evicted : null;
  }

  /**
   * Spends `presented` and gives its session a successor. The conditional UPDATE is the claim: of
   * several requests presenting one token at once exactly one changes the row (on PostgreSQL the others
   * wait for its commit and then find the token spent), and the others get the same successor because it
   * is derived from the token, not drawn at random. `checks.admit` may refuse the token's user (it
   * throws) before a rotation writes anything; `checks.onReuse` writes alongside the revocation a reuse
   * causes.
   *
   * On PostgreSQL no transaction is opened for a rotation: the look-up and the claim (one statement with
   * the successor and the session's update) are two round trips; only a reuse opens one. SQLite runs the
   * whole in one of its serialised transactions.
   */
  rotate(presented: string, client: SessionClient, checks: RotationChecks): Promise<Rotation> {
    if (this.transactions.isPostgres) return this.rotateWith(this.sessions.manager, presented, client, checks);
    return this.transactions.run((manager) => this.rotateWith(manager, presented, client, checks));
  }

  private async rotateWith(manager: EntityManager, presented: string, client: SessionClient, checks: RotationChecks): Promise<Rotation> {
    const tokens = manager.getRepository(RefreshToken);
    const tokenHash = sha256Hex(presented);
    // The token, its session and the session's user in one round trip (a session never outlives its user:
    // ON DELETE CASCADE).
    const token = await tokens
      .createQueryBuilder('token')
      .innerJoinAndSelect('token.session', 'session')
      .innerJoinAndSelect('session.user', 'user')
      .where('token.tokenHash = :tokenHash', { tokenHash })
      .getOne();
    const session = token?.session;
    const now = this.config.clock();
    if (!token || !session?.user || session.revokedAt !== null || session.expiresAt <= now || this.expiryFrom(token.createdAt) <= now) {
      return { outcome: 'invalid' };
    }
    const rotated = { outcome: 'rotated', sessionId: session.id, user: session.user, aal: session.aal, amr: session.amr.split(' ') } as const;
    const successor = this.successorOf(presented);
    let spentAt = token.spentAt;
    if (spentAt === null) {
      checks.admit(session.user);
      const touched = { lastUsedAt: now, expiresAt: this.expiryFrom(now), ...clientColumns(client) };
      const claimed = this.transactions.isPostgres
        ? await this.spendInOneStatement(manager, tokenHash, sha256Hex(successor), touched)
        : await this.spend(manager, tokenHash, sha256Hex(successor), session.id, touched);
      if (claimed) return { ...rotated, refreshToken: successor, repeated: false };
      spentAt = (await tokens.findOneBy({ tokenHash }))!.spentAt!; // a racing request spent it first
    }
    if (now.getTime() - spentAt.getTime() <= this.config.refreshTokenReuseGraceSeconds * 1000) {
      checks.admit(session.user);
      return { ...rotated, refreshToken: successor, repeated: true };
    }
    // A reuse ends the session whoever holds the account now.
    const reused = { outcome: 'reused', sessionId: session.id, userId: session.userId } as const;
    const revoke = async (writer: EntityManager): Promise<void> => {
      await this.revokeWhere(writer, session.userId, { id: session.id });
      await checks.onReuse(writer, reused);
    };
    // On PostgreSQL `manager` is outside any transaction (see `rotate`); SQLite's is one already.
    await (this.transactions.isPostgres ? this.transactions.run(revoke) : revoke(manager));
    return reused;
  }

  /**
   * `rotate`'s writes, statement by statement: the claim (false when a racing request spent the token
   * first), then the successor and the session's new expiry and last use.
   */
  private async spend(manager: EntityManager, tokenHash: string, successorHash: string, sessionId: string, touched: TouchedSession): Promise<boolean> {
    const tokens = manager.getRepository(RefreshToken);
    const claim = await tokens.update({ tokenHash, spentAt: IsNull() }, { spentAt: touched.lastUsedAt });
    if (claim.affected !== 1) return false;
    await tokens.insert({ tokenHash: successorHash, sessionId, createdAt: touched.lastUsedAt, spentAt: null });
    await manager.getRepository(Session).update({ id: sessionId }, touched);
    return true;
  }

  /**
   * The same writes as `spend` in one round trip on PostgreSQL. The successor and the session's update
   * take their rows from the claim, so when a racing request claimed the token first (the UPDATE waits
   * for its commit, then finds `spent_at` set), the statement writes nothing.
   */
  private async spendInOneStatement(manager: EntityManager, tokenHash: string, successorHash: string, touched: TouchedSession): Promise<boolean> {
    const sessions = this.tableOf(manager, Session);
    const tokens = this.tableOf(manager, RefreshToken);
    const [row] = (await manager.query(
      `WITH claimed AS (
         UPDATE ${tokens} SET spent_at = $1::timestamptz WHERE token_hash = $2 AND spent_at IS NULL RETURNING session_id
       ), successor AS (
         INSERT INTO ${tokens} (token_hash, session_id, created_at, spent_at)
         SELECT $3::varchar, session_id, $1::timestamptz, NULL FROM claimed
       ), touched AS (
         UPDATE ${sessions} SET last_used_at = $1::timestamptz, expires_at = $4::timestamptz, user_agent = $5::varchar, ip = $6::varchar
         WHERE id IN (SELECT session_id FROM claimed)
       )
       SELECT count(*)::integer AS claimed FROM claimed`,
      [touched.lastUsedAt, tokenHash, successorHash, touched.expiresAt, touched.userAgent, touched.ip],
    )) as { claimed: number }[];
    return row.claimed === 1;
  }

  private tableOf(manager: EntityManager, entity: typeof Session | typeof RefreshToken | typeof User): string {
    return manager.connection.driver.escape(manager.connection.getMetadata(entity).tableName);
  }

  /**
   * Ends one live session of the user, in the caller's transaction (so that its audit event commits with
   * it); false when the user has no such live session. An id from a URL can hold anything, U+0000
   * included, which PostgreSQL refuses with an error rather than finding nothing.
   */
  async revokeOne(manager: EntityManager, userId: number, sessionId: string): Promise<boolean> {
    if (!isSessionId(sessionId)) return false;
    return this.revokeWhere(manager, userId, { id: sessionId });
  }

  /** Ends every session of the user, in the caller's transaction (password change and reset). */
  async revokeAll(manager: EntityManager, userId: number): Promise<void> {
    await this.revokeWhere(manager, userId, {});
  }

  /**
   * After a second factor is enabled: this session counts as `aal2` from its next refresh, and every
   * other session of the user ends (they were opened without it).
   */
  async elevateAndEndOthers(manager: EntityManager, userId: number, sessionId: string): Promise<void> {
    await manager.getRepository(Session).update({ id: sessionId, userId }, { aal: PASSWORD_AND_OTP.aal, amr: PASSWORD_AND_OTP.amr.join(' ') });
    await this.revokeWhere(manager, userId, { id: Not(sessionId) });
  }

  /**
   * Ends every live session of the user but `keepSessionId` (an email change confirmed: the session
   * that asked for it stays), in the caller's transaction; all of them when it is null.
   */
  async revokeAllExcept(manager: EntityManager, userId: number, keepSessionId: string | null): Promise<void> {
    await this.revokeWhere(manager, userId, keepSessionId === null ? {} : { id: Not(keepSessionId) });
  }

  /**
   * Whether the live session of the user was signed in at most `RECENT_SIGNIN_SECONDS` ago: measured
   * from its creation (refreshes keep it), never from the last refresh.
   */
  async signedInRecently(userId: number, sessionId: string): Promise<boolean> {
    if (!isSessionId(sessionId)) return false;
    const session = await this.sessions.findOne({ select: { id: true, createdAt: true }, where: { id: sessionId, ...this.liveOf(userId) } });
    return session !== null && this.config.clock().getTime() - session.createdAt.getTime() <= RECENT_SIGNIN_SECONDS * 1000;
  }

  /** The user's live sessions, most recently used first. */
  listLive(userId: number): Promise<Session[]> {
    return this.sessions.find({ where: this.liveOf(userId), order: { lastUsedAt: 'DESC', createdAt: 'DESC' } });
  }

  /**
   * Deletes revoked and expired sessions (their refresh tokens go with them, ON DELETE CASCADE), and
   * spent refresh tokens old enough to have expired anyway. `Housekeeping` runs it hourly on every
   * instance; returns the number of sessions deleted.
   */
  async prune(): Promise<number> {
    const now = this.config.clock();
    const deleted = await deleteInBatches(this.transactions, Session, [{ revokedAt: Not(IsNull()) }, { expiresAt: LessThanOrEqual(now) }]);
    const tokensExpiredBefore = new Date(now.getTime() - this.config.refreshTokenTtlSeconds * 1000);
    await this.transactions.run((manager) =>
      manager.getRepository(RefreshToken).delete({ spentAt: Not(IsNull()), createdAt: LessThanOrEqual(tokensExpiredBefore) }),
    );
    return deleted;
  }

  private liveOf(userId: number): FindOptionsWhere<Session> {
    return { userId, revokedAt: IsNull(), expiresAt: MoreThan(this.config.clock()) };
  }

  /** Revokes the user's live sessions among `which` (all of them for `{}`); false when there was none. */
  private async revokeWhere(manager: EntityManager, userId: number, which: FindOptionsWhere<Session>): Promise<boolean> {
    const result = await manager.getRepository(Session).update({ ...which, ...this.liveOf(userId) }, { revokedAt: this.config.clock() });
    if (!result.affected) return false;
    // After the commit: a cache refilled before it would see the session still live.
    this.transactions.afterCommit(manager, () => this.changes.notify(userId));
    return true;
  }

  private successorOf(token: string): string {
    return createHmac('sha256', this.successorKey).update(token).digest('base64url');
  }

  private expiryFrom(from: Date): Date {
    return new Date(from.getTime() + this.config.refreshTokenTtlSeconds * 1000);
  }
}

type TouchedSession = Pick<Session, 'lastUsedAt' | 'expiresAt' | 'userAgent' | 'ip'>;

function clientColumns(client: SessionClient): Pick<Session, 'userAgent' | 'ip'> {
  return { userAgent: client.userAgent?.slice(0, USER_AGENT_MAX) ?? null, ip: client.ip?.slice(0, IP_MAX) ?? null };
}
