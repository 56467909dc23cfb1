import { BadRequestException, ForbiddenException, Inject, Injectable, Logger, NotFoundException } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { AuditClient, AuditService } from '../audit/audit.service';
import { AuthEvent } from '../audit/auth-event.entity';
import { AuthErrors } from '../common/auth.errors';
import { TooManyRequestsException, ValidationFailedException } from '../common/exceptions';
import { TransactionRunner } from '../common/transaction-runner';
import { EmailChangeTokensService } from '../one-time-tokens/email-change-tokens.service';
import { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { MailOutbox } from '../outbox/mail-outbox.service';
import { OutboxWorker } from '../outbox/outbox.worker';
import { PasswordHasher } from '../passwords/password-hasher';
import { SigninFailureLimiter } from '../rate-limits/signin-failures';
import { Session } from '../sessions/session.entity';
import { SessionsService } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { normalizeEmail, UsersService } from '../users/users.service';
import { ACCOUNT_DATA } from './account-data';

/** Who is asking and from where (the HTTP layer's `RequestContext`). */
export interface AccountRequestContext {
  requestId: string;
  ip: string;
  userAgent: string | null;
}

/** A sign-in identity at an OpenID Connect provider, as the export lists it. */
export interface ExportedIdentity {
  id: number | string;
  provider: string;
  email: string | null;
  createdAt: Date;
}

/**
 * Where the export finds the account's identities at OpenID Connect providers. The module binds it to
 * the OIDC feature's `IdentitiesService` (which sits above this folder, so it is not imported here).
 */
export const ACCOUNT_IDENTITIES = Symbol('ACCOUNT_IDENTITIES');

export interface AccountIdentities {
  listOf(userId: number): Promise<ExportedIdentity[]>;
}

/** What `GET /me/export` hands over: the account's own data, never a hash, token or secret. */
export interface AccountData {
  user: User;
  sessions: Session[];
  identities: ExportedIdentity[];
  events: AuthEvent[];
}

/**
 * Account self-service beyond the profile: moving the account to another address (only once a link
 * mailed there is followed), deleting it with everything it holds, and exporting its data. Changing or
 * deleting needs the password, counted like a sign-in, or for an account without one a recent sign-in;
 * the route adds `aal2` when the account has a second factor.
 */
@Injectable()
export class AccountService {
  private readonly logger = new Logger('AuthEvents');

  constructor(
    private readonly users: UsersService,
    private readonly hasher: PasswordHasher,
    private readonly signinFailures: SigninFailureLimiter,
    private readonly transactions: TransactionRunner,
    private readonly outbox: MailOutbox,
    private readonly mailWorker: OutboxWorker,
    private readonly sessions: SessionsService,
    private readonly auditLog: AuditService,
    private readonly emailChangeTokens: EmailChangeTokensService,
    private readonly resetTokens: PasswordResetTokensService,
    private readonly verificationTokens: EmailVerificationTokensService,
    @Inject(ACCOUNT_IDENTITIES) private readonly identities: AccountIdentities,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  /**
   * Asks to move the account to `newEmail`. The answer is the same whether or not the address is free
   * (no oracle): a free one gets the confirmation link, an account holding it a notice instead, and the
   * old address a notice either way. Past `emailChangeMailsPerHour` requests the answer stays the same
   * and nothing is mailed or changed. Every request that mails voids the links of older ones.
   */
  async requestEmailChange(user: User, sessionId: string, newEmail: string, password: string | undefined, ctx: AccountRequestContext): Promise<void> {
    await this.confirmIdentity(user, sessionId, password, ctx);
    const wanted = normalizeEmail(newEmail);
    const mailed = await this.transactions.run(async (manager) => {
      // Counting the notices and writing the next one take turns per account (see `MailOutbox.enqueueWithinCap`).
      await this.users.lockForUpdate(manager, user.id);
      const current = await this.users.findById(user.id, manager);
      if (!current) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      const queued = await this.outbox.enqueueWithinCap(manager, 'email-change-requested', current, this.config.rateLimit.emailChangeMailsPerHour);
      if (queued) {
        await this.emailChangeTokens.voidAll(manager, current.id);
        const holder = await manager.getRepository(User).findOneBy({ email: wanted });
        if (!holder) {
          await this.emailChangeTokens.request(manager, current.id, wanted, sessionId);
          await this.outbox.enqueue(manager, 'email-change-confirmation', { id: current.id, email: wanted });
        } else if (holder.id !== current.id) {
          await this.outbox.enqueue(manager, 'email-change-address-taken', holder);
        }
      }
      // The same event whether the address was free or not: the owner reads these at GET /events.
      await this.auditLog.record(manager, {
        type: 'email_change_requested',
        userId: current.id,
        sessionId,
        client: clientOf(ctx),
        details: queued ? undefined : { mail: 'capped' },
      });
      return queued;
    });
    if (mailed) this.mailWorker.wake();
    this.audit(mailed ? 'email_change_requested' : 'email_change_mail_capped', user.id, ctx, sessionId);
  }

  /**
   * Follows the link mailed to the new address: the account moves there, verified, every session but
   * the one that asked ends, and links mailed to the old address (reset, verification) stop working.
   * An address taken meanwhile leaves the link unspent and everything as it was.
   */
  async confirmEmailChange(token: string, ctx: AccountRequestContext): Promise<void> {
    let userId: number;
    try {
      userId = await this.transactions.run(async (manager) => {
        const change = await this.emailChangeTokens.redeemChange(manager, token);
        if (!change) throw new BadRequestException(AuthErrors.INVALID_EMAIL_CHANGE_TOKEN);
        if (await this.users.emailTakenIn(manager, change.newEmail, change.userId)) {
          throw new BadRequestException(AuthErrors.EMAIL_ALREADY_REGISTERED);
        }
        await this.users.changeEmail(manager, change.userId, change.newEmail, this.config.clock());
        await this.sessions.revokeAllExcept(manager, change.userId, change.sessionId);
        await this.resetTokens.voidAll(manager, change.userId);
        await this.verificationTokens.voidAll(manager, change.userId);
        await this.auditLog.record(manager, { type: 'email_changed', userId: change.userId, sessionId: change.sessionId, client: clientOf(ctx) });
        return change.userId;
      });
    } catch (error) {
      // Two accounts confirming one address at once: the unique index lets one through.
      if (UsersService.isUniqueViolation(error)) throw new BadRequestException(AuthErrors.EMAIL_ALREADY_REGISTERED);
      throw error;
    }
    this.audit('email_changed', userId, ctx);
  }

  /**
   * Deletes the account and everything it holds in one transaction (`ACCOUNT_DATA`), keeps its audit
   * events without client addresses, and queues a goodbye to its address, which the outbox deletes once
   * it is sent or dead. Its tokens stop working at once: its sessions are gone, and the cached copy of
   * the user is dropped on every instance after the commit.
   */
  async deleteAccount(user: User, sessionId: string, password: string | undefined, ctx: AccountRequestContext): Promise<void> {
    await this.confirmIdentity(user, sessionId, password, ctx);
    await this.transactions.run(async (manager) => {
      // Two deletions at once: the second waits here and then finds nothing to delete.
      await this.users.lockForUpdate(manager, user.id);
      const current = await this.users.findById(user.id, manager);
      if (!current) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      await this.eraseAccountData(manager, current.id);
      await this.users.deleteIn(manager, current.id);
      await this.auditLog.anonymize(manager, current.id);
      await this.outbox.enqueue(manager, 'account-deleted', { id: null, email: current.email });
      await this.auditLog.record(manager, { type: 'account_deleted', userId: current.id, sessionId, client: null });
    });
    this.mailWorker.wake();
    this.audit('account_deleted', user.id, ctx, sessionId);
  }

  /** The account's data for `GET /me/export`. */
  async exportData(user: User): Promise<AccountData> {
    const [sessions, identities, events] = await Promise.all([this.sessions.listLive(user.id), this.identities.listOf(user.id), this.auditLog.allOf(user.id)]);
    return { user, sessions, identities, events };
  }

  /** Deletes every row of the account in the tables of `ACCOUNT_DATA`, in the caller's transaction. */
  private async eraseAccountData(manager: EntityManager, userId: number): Promise<void> {
    for (const { entity, condition } of ACCOUNT_DATA) {
      await manager.createQueryBuilder().delete().from(entity).where(condition(manager), { userId }).execute();
    }
  }

  /**
   * The confirmation a change of the account needs: its password (400 when wrong, counted like a
   * failed sign-in, 429 past the limit), or, for an account without one, a session signed in at most
   * `RECENT_SIGNIN_SECONDS` ago (403 otherwise).
   */
  private async confirmIdentity(user: User, sessionId: string, password: string | undefined, ctx: AccountRequestContext): Promise<void> {
    const stored = await this.users.findByIdWithPassword(user.id);
    if (!stored) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    // An account made through a provider has none.
    const hash = stored.hashedPassword;
    if (hash === null) {
      if (!(await this.sessions.signedInRecently(user.id, sessionId))) {
        this.audit('recent_signin_required', user.id, ctx, sessionId);
        throw new ForbiddenException(AuthErrors.RECENT_SIGNIN_REQUIRED);
      }
      return;
    }
    if (password === undefined) {
      throw new ValidationFailedException([{ field: 'password', message: 'password is required: this account has one' }]);
    }
    this.hasher.assertCapacity();
    // A stolen access token must not buy unlimited guesses at the password: counted like sign-ins.
    const admission = await this.signinFailures.admit(stored.email, ctx.ip);
    if (admission.waitSeconds > 0) {
      this.audit('signin_blocked', null, ctx);
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_SIGNIN_FAILURES, admission.waitSeconds, admission.limit);
    }
    if ((await this.hasher.verify(hash, password)) === 'mismatch') {
      this.audit('account_confirmation_failed', user.id, ctx, sessionId);
      throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
    }
    await this.signinFailures.succeeded(stored.email, ctx.ip);
  }

  /** One line per event, as `AuthService` writes them: what, who, which request, from where. Never a credential. */
  private audit(event: string, userId: number | null, ctx: AccountRequestContext, sessionId?: string): void {
    const session = sessionId ? ` session_id=${sessionId}` : '';
    this.logger.log(`event=${event} user_id=${userId ?? '-'}${session} request_id=${ctx.requestId} ip=${ctx.ip}`);
  }
}

function clientOf(ctx: AccountRequestContext): AuditClient {
  return { ip: ctx.ip, userAgent: ctx.userAgent };
}
