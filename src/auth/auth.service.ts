import {
  BadRequestException,
  ForbiddenException,
  Inject,
  Injectable,
  Logger,
  NotFoundException,
  OnApplicationShutdown,
  UnauthorizedException,
} from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { TooManyRequestsException } from '../common/exceptions';
import { TransactionRunner } from '../common/transaction-runner';
import { CappedKind, MailOutbox } from '../outbox/mail-outbox.service';
import { OutboxWorker } from '../outbox/outbox.worker';
import { Rotation, SessionClient, SessionsService, StartedSession } from '../sessions/sessions.service';
import { User } from '../users/user.entity';
import { normalizeEmail, UserAlreadyExistsError, UsersService } from '../users/users.service';
import { AccessTokenService } from './access-token.service';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { AuthErrors, AuthMessages } from '../common/auth.errors';
import type { RequestContext } from './decorators';
import {
  ChangePasswordDto,
  ForgotPasswordDto,
  ResendVerificationDto,
  ResetPasswordDto,
  SignInDto,
  SignUpDto,
  VerifyEmailDto,
} from './dto/requests.dto';
import { SessionResponse, SuccessResponse, TokenResponse, UserResponse } from './dto/responses.dto';
import { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { PasswordHasher } from '../passwords/password-hasher';
import { PasswordPolicy } from '../passwords/password-policy';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { MailRequestLimiter, MailRoute, SigninFailureLimiter } from '../rate-limits/signin-failures';

/**
 * The seed's auth flows, plus email verification. Throws HTTP exceptions with the contract's messages;
 * never logs a secret. Every mail is written to the outbox in the transaction of the change that causes
 * it, and the worker is woken once that commits: no request waits for SMTP.
 */
@Injectable()
export class AuthService implements OnApplicationShutdown {
  private readonly logger = new Logger('AuthEvents');
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly users: UsersService,
    private readonly hasher: PasswordHasher,
    private readonly policy: PasswordPolicy,
    private readonly accessTokens: AccessTokenService,
    private readonly resetTokens: PasswordResetTokensService,
    private readonly verificationTokens: EmailVerificationTokensService,
    private readonly signinFailures: SigninFailureLimiter,
    private readonly mailRequests: MailRequestLimiter,
    private readonly transactions: TransactionRunner,
    private readonly outbox: MailOutbox,
    private readonly mailWorker: OutboxWorker,
    private readonly sessions: SessionsService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  async signUp(dto: SignUpDto, ctx: RequestContext): Promise<TokenResponse> {
    this.policy.assertAcceptable('password', dto.password, dto);
    this.hasher.assertCapacity();
    const taken = await this.users.findTakenField(dto.email, dto.username);
    if (taken) throw this.alreadyExists(taken);
    const newUser = {
      email: dto.email,
      username: dto.username,
      fullName: dto.full_name ?? null,
      hashedPassword: await this.hasher.hash(dto.password),
    };
    let user: User;
    let session!: StartedSession;
    try {
      user = await this.users.create(newUser, async (manager, created) => {
        await this.outbox.enqueue(manager, 'welcome', created);
        session = await this.sessions.start(manager, created.id, clientOf(ctx));
      });
    } catch (error) {
      if (error instanceof UserAlreadyExistsError) throw this.alreadyExists(error.field);
      throw error;
    }
    this.mailWorker.wake();
    this.audit('signed_up', user.id, ctx, session.sessionId);
    return this.tokenResponse(user, session);
  }

  async signIn(dto: SignInDto, ctx: RequestContext): Promise<TokenResponse> {
    this.hasher.assertCapacity();
    const email = normalizeEmail(dto.email);
    await this.admitPasswordAttempt(email, ctx);
    const user = await this.users.findByEmailWithPassword(email);
    const check = await this.hasher.verify(user?.hashedPassword ?? null, dto.password);
    if (!user || check === 'mismatch') {
      this.audit('signin_failed', user?.id ?? null, ctx);
      throw new UnauthorizedException(AuthErrors.INVALID_CREDENTIALS);
    }
    await this.signinFailures.clear(email);
    if (!user.isActive) {
      this.audit('signin_inactive', user.id, ctx);
      throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    }
    if (this.config.requireVerifiedEmail && !user.isVerified) {
      this.audit('signin_unverified', user.id, ctx);
      throw new ForbiddenException(AuthErrors.EMAIL_NOT_VERIFIED);
    }
    if (check === 'match-needs-rehash') {
      await this.users.replacePasswordHash(user.id, user.hashedPassword, await this.hasher.hash(dto.password));
    }
    const session = await this.transactions.run(async (manager) => {
      // A password change or reset that committed after the check above ends every session, and this
      // one must not slip in after it: opened against the old password, it would outlive the change.
      if ((await this.users.lockTokenVersion(manager, user.id)) !== user.tokenVersion) {
        throw new UnauthorizedException(AuthErrors.INVALID_CREDENTIALS);
      }
      return this.sessions.start(manager, user.id, clientOf(ctx));
    });
    this.audit('signed_in', user.id, ctx, session.sessionId);
    return this.tokenResponse(user, session);
  }

  /** Exchanges a refresh token for new tokens (`SessionsService.rotate` says how). */
  async refresh(presented: string | undefined, ctx: RequestContext): Promise<TokenResponse> {
    const { rotation, user } = presented
      ? await this.transactions.run((manager) => this.rotateForAllowedUser(manager, presented, ctx))
      : { rotation: { outcome: 'invalid' } as const, user: null };
    if (rotation.outcome === 'rotated' && user) {
      this.audit(rotation.repeated ? 'refreshed_within_grace' : 'refreshed', user.id, ctx, rotation.sessionId);
      return this.tokenResponse(user, rotation);
    }
    if (rotation.outcome === 'reused') {
      // A token spent a while ago came back: one of its two holders is not the owner. The session is over.
      this.logger.warn(this.auditLine('refresh_token_reused', rotation.userId, ctx, rotation.sessionId));
    } else {
      this.audit('refresh_failed', null, ctx);
    }
    throw new UnauthorizedException(AuthErrors.INVALID_REFRESH_TOKEN);
  }

  /**
   * The account must still be allowed in (active, verified when required); when it is not, the throw
   * rolls the rotation back and the presented token stays as it was.
   */
  private async rotateForAllowedUser(
    manager: EntityManager,
    presented: string,
    ctx: RequestContext,
  ): Promise<{ rotation: Rotation; user: User | null }> {
    const rotation = await this.sessions.rotate(manager, presented, clientOf(ctx));
    if (rotation.outcome !== 'rotated') return { rotation, user: null };
    // Never null: deleting a user deletes its sessions (ON DELETE CASCADE).
    const user = (await this.users.findById(rotation.userId, manager))!;
    if (!user.isActive) throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    if (this.config.requireVerifiedEmail && !user.isVerified) throw new ForbiddenException(AuthErrors.EMAIL_NOT_VERIFIED);
    return { rotation, user };
  }

  async signOut(user: User, sessionId: string, ctx: RequestContext): Promise<SuccessResponse> {
    await this.sessions.revoke(user.id, sessionId);
    this.audit('signed_out', user.id, ctx, sessionId);
    return { message: AuthMessages.SIGNED_OUT };
  }

  async signOutEverywhere(user: User, ctx: RequestContext): Promise<SuccessResponse> {
    await this.transactions.run((manager) => this.sessions.revokeAll(manager, user.id));
    this.audit('signed_out_everywhere', user.id, ctx);
    return { message: AuthMessages.SIGNED_OUT_EVERYWHERE };
  }

  async listSessions(user: User, currentSessionId: string): Promise<SessionResponse[]> {
    const sessions = await this.sessions.listLive(user.id);
    return sessions.map((session) => SessionResponse.from(session, currentSessionId));
  }

  /** Ends one of the user's own sessions; someone else's id is answered like an unknown one. */
  async endSession(user: User, sessionId: string, ctx: RequestContext): Promise<SuccessResponse> {
    if (!(await this.sessions.revoke(user.id, sessionId))) throw new NotFoundException(AuthErrors.SESSION_NOT_FOUND);
    this.audit('session_ended', user.id, ctx, sessionId);
    return { message: AuthMessages.SESSION_ENDED };
  }

  async forgotPassword(dto: ForgotPasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    await this.limitMailRequests('forgot-password', dto.email, ctx);
    const user = await this.users.findByEmail(dto.email);
    if (!user) {
      this.audit('password_reset_requested_unknown_email', null, ctx);
    } else {
      // Queued after the answer: the outbox transaction would otherwise make a known email's answer
      // measurably slower than an unknown one's, which tells a stranger which emails have accounts.
      this.afterResponse('password_reset_request', ctx, async () => {
        const queued = await this.mailWithinCap('password-reset', user, this.config.rateLimit.passwordResetMailsPerHour);
        this.audit(queued ? 'password_reset_requested' : 'password_reset_mail_capped', user.id, ctx);
      });
    }
    return { message: AuthMessages.RESET_EMAIL_SENT };
  }

  /** Resolves once the work queued by `afterResponse` so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.settled();
  }

  private afterResponse(what: string, ctx: RequestContext, work: () => Promise<void>): void {
    const running: Promise<void> = work()
      .catch((error: Error) => this.logger.error(`${what} failed request_id=${ctx.requestId}: ${error.message}`, error.stack))
      .finally(() => this.pending.delete(running));
    this.pending.add(running);
  }

  async resetPassword(dto: ResetPasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    // A made-up token is turned away before the (deliberately slow) hash of the new password, and a
    // refused password before the token is spent, so the user can try another with the same link.
    const holderId = await this.resetTokens.peek(dto.token);
    if (holderId === null) throw new BadRequestException(AuthErrors.INVALID_RESET_TOKEN);
    const holder = await this.users.findById(holderId);
    if (holder) this.policy.assertAcceptable('new_password', dto.new_password, holder);
    const hashedPassword = await this.hasher.hash(dto.new_password);
    const user = await this.transactions.run(async (manager) => {
      const userId = await this.resetTokens.redeem(manager, dto.token);
      if (userId === null) throw new BadRequestException(AuthErrors.INVALID_RESET_TOKEN);
      const found = await this.users.findById(userId, manager);
      if (!found) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
      await this.users.changePassword(manager, found.id, hashedPassword);
      await this.sessions.revokeAll(manager, found.id);
      // The link came to this address: following it proves the address as well as a verification would.
      await this.users.markVerified(manager, found.id, this.config.clock());
      await this.outbox.enqueue(manager, 'password-changed', found);
      return found;
    });
    this.mailWorker.wake();
    // The owner just proved control of the mailbox: a lockout built up by someone guessing ends here.
    await this.signinFailures.clear(user.email);
    this.audit('password_reset', user.id, ctx);
    return { message: AuthMessages.PASSWORD_RESET };
  }

  async changePassword(currentUser: User, dto: ChangePasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.users.findByIdWithPassword(currentUser.id);
    if (!user) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    this.policy.assertAcceptable('new_password', dto.new_password, user);
    // A stolen access token must not buy unlimited guesses at the password: counted like sign-ins.
    await this.admitPasswordAttempt(user.email, ctx);
    if ((await this.hasher.verify(user.hashedPassword, dto.old_password)) === 'mismatch') {
      this.audit('password_change_failed', user.id, ctx);
      throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
    }
    await this.signinFailures.clear(user.email);
    const hashedPassword = await this.hasher.hash(dto.new_password);
    await this.transactions.run(async (manager) => {
      // Checked against the hash read above: a change or reset that committed since makes the password
      // presented no longer the current one.
      if (!(await this.users.changePassword(manager, user.id, hashedPassword, user.hashedPassword))) {
        throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
      }
      await this.sessions.revokeAll(manager, user.id);
      // A reset link mailed before the change would otherwise still set a password afterwards.
      await this.resetTokens.voidAll(manager, user.id);
      await this.outbox.enqueue(manager, 'password-changed', user);
    });
    this.mailWorker.wake();
    this.audit('password_changed', user.id, ctx);
    return { message: AuthMessages.PASSWORD_CHANGED };
  }

  async verifyEmail(dto: VerifyEmailDto, ctx: RequestContext): Promise<SuccessResponse> {
    const userId = await this.transactions.run(async (manager) => {
      const redeemed = await this.verificationTokens.redeem(manager, dto.token);
      if (redeemed !== null) await this.users.markVerified(manager, redeemed, this.config.clock());
      return redeemed;
    });
    if (userId === null) throw new BadRequestException(AuthErrors.INVALID_VERIFICATION_TOKEN);
    this.audit('email_verified', userId, ctx);
    return { message: AuthMessages.EMAIL_VERIFIED };
  }

  /** Blind like forgot-password: the same answer for unknown, verified and capped addresses. */
  async resendVerification(dto: ResendVerificationDto, ctx: RequestContext): Promise<SuccessResponse> {
    await this.limitMailRequests('resend-verification', dto.email, ctx);
    const user = await this.users.findByEmail(dto.email);
    if (!user) {
      this.audit('verification_requested_unknown_email', null, ctx);
    } else if (user.isVerified) {
      this.audit('verification_requested_already_verified', user.id, ctx);
    } else if (await this.mailWithinCap('email-verification', user, this.config.rateLimit.verificationMailsPerHour)) {
      this.audit('verification_requested', user.id, ctx);
    } else {
      this.audit('verification_mail_capped', user.id, ctx);
    }
    return { message: AuthMessages.VERIFICATION_EMAIL_SENT };
  }

  /** 429 once the account had its share of failed password checks in the window; counts this one first. */
  private async admitPasswordAttempt(email: string, ctx: RequestContext): Promise<void> {
    const retryAfter = await this.signinFailures.admit(email);
    if (retryAfter > 0) {
      this.audit('signin_blocked', null, ctx);
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_SIGNIN_FAILURES, retryAfter, this.signinFailures.maxFailures);
    }
  }

  private async limitMailRequests(route: MailRoute, email: string, ctx: RequestContext): Promise<void> {
    const retryAfter = await this.mailRequests.hit(route, normalizeEmail(email));
    if (retryAfter > 0) {
      this.audit(`${route}_limited`, null, ctx);
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_MAIL_REQUESTS, retryAfter, this.mailRequests.maxRequests);
    }
  }

  /** Queues a mail a stranger can ask for, unless the account had its hourly share; true when queued. */
  private async mailWithinCap(kind: CappedKind, user: User, perHour: number): Promise<boolean> {
    const queued = await this.transactions.run(async (manager) => {
      await this.users.lockForUpdate(manager, user.id);
      return this.outbox.enqueueWithinCap(manager, kind, user, perHour);
    });
    if (queued) this.mailWorker.wake();
    return queued;
  }

  private tokenResponse(user: User, session: StartedSession): TokenResponse {
    const { token, expiresInSeconds } = this.accessTokens.issue(user, session.sessionId);
    return {
      access_token: token,
      token_type: 'bearer',
      expires_in: expiresInSeconds,
      refresh_token: session.refreshToken,
      refresh_expires_in: this.config.refreshTokenTtlSeconds,
      user: UserResponse.from(user),
    };
  }

  private alreadyExists(field: 'email' | 'username'): BadRequestException {
    return new BadRequestException(
      field === 'email' ? AuthErrors.EMAIL_ALREADY_REGISTERED : AuthErrors.USERNAME_ALREADY_TAKEN,
    );
  }

  /** One line per auth event: what, which user (and session), which request, from where. Never a credential. */
  private audit(event: string, userId: number | null, ctx: RequestContext, sessionId?: string): void {
    this.logger.log(this.auditLine(event, userId, ctx, sessionId));
  }

  private auditLine(event: string, userId: number | null, ctx: RequestContext, sessionId?: string): string {
    const session = sessionId ? ` session_id=${sessionId}` : '';
    return `event=${event} user_id=${userId ?? '-'}${session} request_id=${ctx.requestId} ip=${ctx.ip}`;
  }
}

function clientOf(ctx: RequestContext): SessionClient {
  return { userAgent: ctx.userAgent, ip: ctx.ip };
}
