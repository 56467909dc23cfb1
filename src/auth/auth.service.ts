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
import { MfaRequiredException, TooManyRequestsException } from '../common/exceptions';
import { MfaService } from '../mfa/mfa.service';
import { renderSVG } from 'uqr';
import { TransactionRunner } from '../common/transaction-runner';
import { AuditService } from '../audit/audit.service';
import { CappedKind, MailOutbox } from '../outbox/mail-outbox.service';
import { OutboxWorker } from '../outbox/outbox.worker';
import { OIDC_AND_OTP, PASSWORD_AND_OTP, PASSWORD_ONLY, Rotation, SessionClient, SessionsService, StartedSession } from '../sessions/sessions.service';
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
  MfaCodeDto,
  ResetPasswordDto,
  SignInDto,
  SignInMfaDto,
  SignUpDto,
  UpdateMeDto,
  VerifyEmailDto,
} from './dto/requests.dto';
import { RecoveryCodesResponse, SessionResponse, SuccessResponse, TokenResponse, TotpSetupResponse, UserResponse } from './dto/responses.dto';
import { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { PasswordHasher } from '../passwords/password-hasher';
import { PasswordPolicy } from '../passwords/password-policy';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { MailRequestLimiter, MailRoute, SigninFailureLimiter } from '../rate-limits/signin-failures';
import { AuthMetrics, noMetrics, SigninStep } from '../metrics/auth-metrics';

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
    private readonly mfa: MfaService,
    private readonly auditLog: AuditService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
    private readonly metrics: AuthMetrics = noMetrics(),
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
        await this.auditLog.record(manager, { type: 'signup', userId: created.id, sessionId: session.sessionId, client: clientOf(ctx) });
      });
    } catch (error) {
      if (error instanceof UserAlreadyExistsError) throw this.alreadyExists(error.field);
      throw error;
    }
    this.mailWorker.wake();
    this.audit('signed_up', user.id, ctx, session.sessionId);
    return this.accessTokens.tokenResponse(user, session);
  }

  async signIn(dto: SignInDto, ctx: RequestContext): Promise<TokenResponse> {
    this.hasher.assertCapacity();
    const email = normalizeEmail(dto.email);
    await this.admitPasswordAttempt(email, ctx, 'password');
    const user = await this.users.findByEmailWithPassword(email);
    const check = await this.hasher.verify(user?.hashedPassword ?? null, dto.password);
    if (!user || check === 'mismatch') {
      // Recorded on its own: the attempt changed nothing else. An unknown email leaves no trace of itself.
      await this.signinFailed(user?.id ?? null, 'invalid_credentials', ctx);
      this.audit('signin_failed', user?.id ?? null, ctx);
      this.metrics.signin('password', 'invalid_credentials');
      throw new UnauthorizedException(AuthErrors.INVALID_CREDENTIALS);
    }
    if (!user.isActive) {
      await this.signinFailed(user.id, 'inactive', ctx);
      this.audit('signin_inactive', user.id, ctx);
      this.metrics.signin('password', 'inactive');
      throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    }
    if (this.config.requireVerifiedEmail && !user.isVerified) {
      await this.signinFailed(user.id, 'email_not_verified', ctx);
      this.audit('signin_unverified', user.id, ctx);
      this.metrics.signin('password', 'email_not_verified');
      throw new ForbiddenException(AuthErrors.EMAIL_NOT_VERIFIED);
    }
    if (check === 'match-needs-rehash') {
      await this.users.replacePasswordHash(user.id, user.hashedPassword!, await this.hasher.hash(dto.password));
    }
    if (user.mfaEnabled) {
      // The failure count stays: clearing it on the password alone would let a password holder reset
      // the count of wrong codes by signing in again, and guess codes without end.
      const mfaToken = await this.transactions.run((manager) => this.mfa.issueChallenge(manager, user));
      this.audit('signin_mfa_required', user.id, ctx);
      this.metrics.signin('password', 'mfa_required');
      throw new MfaRequiredException(AuthErrors.MFA_REQUIRED, mfaToken);
    }
    await this.signinFailures.succeeded(email, ctx.ip);
    const session = await this.transactions.run(async (manager) => {
      // Not when a password change or reset committed after the check above: opened against the old
      // password, the session would outlive the change.
      const started = await this.sessions.startAtVersion(manager, user.id, user.tokenVersion, clientOf(ctx), PASSWORD_ONLY);
      if (!started) throw new UnauthorizedException(AuthErrors.INVALID_CREDENTIALS);
      await this.auditLog.record(manager, { type: 'signin', userId: user.id, sessionId: started.sessionId, client: clientOf(ctx), details: { amr: started.amr } });
      return started;
    });
    this.audit('signed_in', user.id, ctx, session.sessionId);
    this.metrics.signin('password', 'success');
    return this.accessTokens.tokenResponse(user, session);
  }

  /**
   * The second half of a sign-in with a second factor: the `mfa_token` of the first half and a TOTP or
   * recovery code. A wrong code counts as a failed sign-in of the account; the token stays usable until
   * it expires or succeeds once.
   */
  async signInMfa(dto: SignInMfaDto, ctx: RequestContext): Promise<TokenResponse> {
    const challenge = await this.mfa.findChallenge(dto.mfa_token);
    const user = challenge && (await this.users.findById(challenge.userId));
    if (!challenge || !user) {
      this.metrics.signin('mfa', 'invalid_mfa_token');
      throw new UnauthorizedException(AuthErrors.INVALID_MFA_TOKEN);
    }
    await this.admitPasswordAttempt(user.email, ctx, 'mfa');
    const outcome = await this.transactions.run(async (manager) => {
      const factor = await this.mfa.useCode(manager, user.id, dto.code);
      if (!factor) return { factor };
      if (!(await this.mfa.spendChallenge(manager, challenge))) throw new UnauthorizedException(AuthErrors.INVALID_MFA_TOKEN);
      // As for a password sign-in: a password change since the first half ends this one.
      const level = challenge.firstFactor === 'oidc' ? OIDC_AND_OTP : PASSWORD_AND_OTP;
      const session = await this.sessions.startAtVersion(manager, user.id, challenge.tokenVersion, clientOf(ctx), level);
      if (!session) throw new UnauthorizedException(AuthErrors.INVALID_MFA_TOKEN);
      if (factor === 'recovery-code') await this.outbox.enqueue(manager, 'recovery-code-used', user);
      const client = clientOf(ctx);
      if (factor === 'recovery-code') await this.auditLog.record(manager, { type: 'recovery_code_used', userId: user.id, sessionId: session.sessionId, client });
      await this.auditLog.record(manager, { type: 'signin', userId: user.id, sessionId: session.sessionId, client, details: { amr: session.amr } });
      return { factor, session };
    });
    if (!outcome.session) {
      await this.signinFailed(user.id, 'invalid_mfa_code', ctx);
      this.audit('signin_mfa_failed', user.id, ctx);
      this.metrics.signin('mfa', 'invalid_code');
      throw new UnauthorizedException(AuthErrors.INVALID_MFA_CODE);
    }
    if (outcome.factor === 'recovery-code') this.mailWorker.wake();
    await this.signinFailures.succeeded(user.email, ctx.ip);
    this.audit(outcome.factor === 'recovery-code' ? 'signed_in_recovery_code' : 'signed_in_mfa', user.id, ctx, outcome.session.sessionId);
    this.metrics.signin('mfa', 'success');
    return this.accessTokens.tokenResponse(user, outcome.session);
  }

  /** `PATCH /me`: the username and full name; the same rules as at sign-up. */
  async updateMe(user: User, dto: UpdateMeDto, ctx: RequestContext): Promise<UserResponse> {
    try {
      const fields = (['username', 'full_name'] as const).filter((field) => dto[field] !== undefined);
      const updated = await this.users.updateProfile(user.id, { username: dto.username, fullName: dto.full_name }, async (manager) => {
        if (fields.length > 0) await this.auditLog.record(manager, { type: 'profile_updated', userId: user.id, client: clientOf(ctx), details: { fields } });
      });
      this.audit('profile_updated', user.id, ctx);
      return UserResponse.from(updated);
    } catch (error) {
      if (error instanceof UserAlreadyExistsError) throw this.alreadyExists(error.field);
      throw error;
    }
  }

  /** Starts TOTP: a new secret (pending until confirmed), its key URI and QR code. */
  async setUpTotp(user: User, ctx: RequestContext): Promise<TotpSetupResponse> {
    if (user.mfaEnabled) throw new BadRequestException(AuthErrors.MFA_ALREADY_ENABLED);
    const pending = await this.transactions.run((manager) => this.mfa.beginSetup(manager, user));
    this.audit('mfa_setup_started', user.id, ctx);
    const svg = renderSVG(pending.otpauthUrl);
    return { secret: pending.secret, otpauth_url: pending.otpauthUrl, qr_code: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}` };
  }

  /** Confirms the pending secret with a first code: TOTP is on, other sessions end, recovery codes come back. */
  async confirmTotp(user: User, sessionId: string, dto: MfaCodeDto, ctx: RequestContext): Promise<RecoveryCodesResponse> {
    await this.admitPasswordAttempt(user.email, ctx);
    const codes = await this.transactions.run(async (manager) => {
      const confirmed = await this.mfa.confirm(manager, user.id, dto.code);
      if (Array.isArray(confirmed)) {
        await this.sessions.elevateAndEndOthers(manager, user.id, sessionId);
        await this.outbox.enqueue(manager, 'mfa-enabled', user);
        await this.auditLog.record(manager, { type: 'mfa_enabled', userId: user.id, sessionId, client: clientOf(ctx) });
        this.transactions.afterCommit(manager, () => this.users.changed(user.id));
      }
      return confirmed;
    });
    if (codes === 'no-pending') throw new BadRequestException(AuthErrors.NO_PENDING_MFA);
    if (codes === 'invalid') {
      this.audit('mfa_confirm_failed', user.id, ctx);
      throw new BadRequestException(AuthErrors.INVALID_MFA_CODE);
    }
    this.mailWorker.wake();
    await this.signinFailures.succeeded(user.email, ctx.ip);
    this.audit('mfa_enabled', user.id, ctx, sessionId);
    return { recovery_codes: codes };
  }

  /** Turns TOTP off, with a code (TOTP or recovery) from a session that showed the second factor. */
  async disableTotp(user: User, dto: MfaCodeDto, ctx: RequestContext, sessionId?: string): Promise<SuccessResponse> {
    await this.admitPasswordAttempt(user.email, ctx);
    const disabled = await this.transactions.run(async (manager) => {
      if (!(await this.mfa.useCode(manager, user.id, dto.code))) return false;
      await this.mfa.disable(manager, user.id);
      await this.outbox.enqueue(manager, 'mfa-disabled', user);
      await this.auditLog.record(manager, { type: 'mfa_disabled', userId: user.id, sessionId, client: clientOf(ctx) });
      this.transactions.afterCommit(manager, () => this.users.changed(user.id));
      return true;
    });
    if (!disabled) {
      this.audit('mfa_disable_failed', user.id, ctx);
      throw new BadRequestException(AuthErrors.INVALID_MFA_CODE);
    }
    this.mailWorker.wake();
    await this.signinFailures.succeeded(user.email, ctx.ip);
    this.audit('mfa_disabled', user.id, ctx);
    return { message: AuthMessages.MFA_DISABLED };
  }

  /** A new set of recovery codes; the old set is void. */
  async newRecoveryCodes(user: User, ctx: RequestContext, sessionId?: string): Promise<RecoveryCodesResponse> {
    // Only a session that showed the second factor gets here with it enabled (`@RequireAal`); without one
    // there is nothing to replace, and no session can be `aal2`.
    if (!user.mfaEnabled) throw new ForbiddenException(AuthErrors.ADDITIONAL_AUTH_REQUIRED);
    const codes = await this.transactions.run(async (manager) => {
      const replaced = await this.mfa.replaceRecoveryCodes(manager, user.id);
      await this.auditLog.record(manager, { type: 'recovery_codes_replaced', userId: user.id, sessionId, client: clientOf(ctx) });
      return replaced;
    });
    this.audit('recovery_codes_replaced', user.id, ctx);
    return { recovery_codes: codes };
  }

  /** Exchanges a refresh token for new tokens (`SessionsService.rotate` says how). */
  async refresh(presented: string | undefined, ctx: RequestContext): Promise<TokenResponse> {
    const rotation: Rotation = presented
      ? await this.sessions.rotate(presented, clientOf(ctx), {
          // The account must still be allowed in; a refusal leaves the presented token as it was.
          admit: (user) => {
            if (!user.isActive) throw new ForbiddenException(AuthErrors.INACTIVE_USER);
            if (this.config.requireVerifiedEmail && !user.isVerified) throw new ForbiddenException(AuthErrors.EMAIL_NOT_VERIFIED);
          },
          // Written with the revocation it causes, which commits although the request fails.
          onReuse: (manager, reuse) =>
            this.auditLog.record(manager, { type: 'refresh_reused', userId: reuse.userId, sessionId: reuse.sessionId, client: clientOf(ctx) }),
        })
      : { outcome: 'invalid' };
    if (rotation.outcome === 'rotated') {
      this.audit(rotation.repeated ? 'refreshed_within_grace' : 'refreshed', rotation.user.id, ctx, rotation.sessionId);
      this.metrics.refresh(rotation.repeated ? 'within_grace' : 'rotated');
      return this.accessTokens.tokenResponse(rotation.user, rotation);
    }
    if (rotation.outcome === 'reused') {
      // A token spent a while ago came back: one of its two holders is not the owner. The session is over.
      this.logger.warn(this.auditLine('refresh_token_reused', rotation.userId, ctx, rotation.sessionId));
      this.metrics.refresh('reused');
    } else {
      this.audit('refresh_failed', null, ctx);
      this.metrics.refresh('invalid');
    }
    throw new UnauthorizedException(AuthErrors.INVALID_REFRESH_TOKEN);
  }

  async signOut(user: User, sessionId: string, ctx: RequestContext): Promise<SuccessResponse> {
    await this.transactions.run(async (manager) => {
      if (await this.sessions.revokeOne(manager, user.id, sessionId)) {
        await this.auditLog.record(manager, { type: 'signout', userId: user.id, sessionId, client: clientOf(ctx) });
      }
    });
    this.audit('signed_out', user.id, ctx, sessionId);
    return { message: AuthMessages.SIGNED_OUT };
  }

  async signOutEverywhere(user: User, ctx: RequestContext, sessionId?: string): Promise<SuccessResponse> {
    await this.transactions.run(async (manager) => {
      await this.sessions.revokeAll(manager, user.id);
      await this.auditLog.record(manager, { type: 'signout', userId: user.id, sessionId, client: clientOf(ctx), details: { scope: 'all' } });
    });
    this.audit('signed_out_everywhere', user.id, ctx);
    return { message: AuthMessages.SIGNED_OUT_EVERYWHERE };
  }

  async listSessions(user: User, currentSessionId: string): Promise<SessionResponse[]> {
    const sessions = await this.sessions.listLive(user.id);
    return sessions.map((session) => SessionResponse.from(session, currentSessionId));
  }

  /** Ends one of the user's own sessions; someone else's id is answered like an unknown one. */
  async endSession(user: User, sessionId: string, ctx: RequestContext): Promise<SuccessResponse> {
    const ended = await this.transactions.run(async (manager) => {
      if (!(await this.sessions.revokeOne(manager, user.id, sessionId))) return false;
      await this.auditLog.record(manager, { type: 'session_revoked', userId: user.id, sessionId, client: clientOf(ctx) });
      return true;
    });
    if (!ended) throw new NotFoundException(AuthErrors.SESSION_NOT_FOUND);
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
        const queued = await this.mailWithinCap('forgot-password', 'password-reset', user, this.config.rateLimit.passwordResetMailsPerHour, ctx);
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
      await this.auditLog.record(manager, { type: 'password_reset', userId: found.id, client: clientOf(ctx) });
      return found;
    });
    this.mailWorker.wake();
    // The owner just proved control of the mailbox: a lockout built up by someone guessing ends here,
    // and this network may sign in while strangers keep the account's limit spent.
    await this.signinFailures.succeeded(user.email, ctx.ip);
    this.audit('password_reset', user.id, ctx);
    return { message: AuthMessages.PASSWORD_RESET };
  }

  async changePassword(currentUser: User, dto: ChangePasswordDto, ctx: RequestContext, sessionId?: string): Promise<SuccessResponse> {
    const user = await this.users.findByIdWithPassword(currentUser.id);
    if (!user) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    this.policy.assertAcceptable('new_password', dto.new_password, user);
    // A stolen access token must not buy unlimited guesses at the password: counted like sign-ins.
    await this.admitPasswordAttempt(user.email, ctx);
    if ((await this.hasher.verify(user.hashedPassword, dto.old_password)) === 'mismatch') {
      this.audit('password_change_failed', user.id, ctx);
      throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
    }
    await this.signinFailures.succeeded(user.email, ctx.ip);
    const hashedPassword = await this.hasher.hash(dto.new_password);
    await this.transactions.run(async (manager) => {
      // Checked against the hash read above: a change or reset that committed since makes the password
      // presented no longer the current one.
      if (!(await this.users.changePassword(manager, user.id, hashedPassword, user.hashedPassword!))) {
        throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
      }
      await this.sessions.revokeAll(manager, user.id);
      // A reset link mailed before the change would otherwise still set a password afterwards.
      await this.resetTokens.voidAll(manager, user.id);
      await this.outbox.enqueue(manager, 'password-changed', user);
      await this.auditLog.record(manager, { type: 'password_changed', userId: user.id, sessionId, client: clientOf(ctx) });
    });
    this.mailWorker.wake();
    this.audit('password_changed', user.id, ctx);
    return { message: AuthMessages.PASSWORD_CHANGED };
  }

  async verifyEmail(dto: VerifyEmailDto, ctx: RequestContext): Promise<SuccessResponse> {
    const userId = await this.transactions.run(async (manager) => {
      const redeemed = await this.verificationTokens.redeem(manager, dto.token);
      if (redeemed !== null) {
        await this.users.markVerified(manager, redeemed, this.config.clock());
        await this.auditLog.record(manager, { type: 'email_verified', userId: redeemed, client: clientOf(ctx) });
      }
      return redeemed;
    });
    if (userId === null) throw new BadRequestException(AuthErrors.INVALID_VERIFICATION_TOKEN);
    this.audit('email_verified', userId, ctx);
    return { message: AuthMessages.EMAIL_VERIFIED };
  }

  /**
   * Blind like forgot-password: the same answer for unknown, verified and capped addresses, and the mail
   * of a known unverified one is queued after the answer, for the same reason as there.
   */
  async resendVerification(dto: ResendVerificationDto, ctx: RequestContext): Promise<SuccessResponse> {
    await this.limitMailRequests('resend-verification', dto.email, ctx);
    const user = await this.users.findByEmail(dto.email);
    if (!user) {
      this.audit('verification_requested_unknown_email', null, ctx);
    } else if (user.isVerified) {
      this.audit('verification_requested_already_verified', user.id, ctx);
    } else {
      this.afterResponse('verification_request', ctx, async () => {
        const queued = await this.mailWithinCap('resend-verification', 'email-verification', user, this.config.rateLimit.verificationMailsPerHour, ctx);
        this.audit(queued ? 'verification_requested' : 'verification_mail_capped', user.id, ctx);
      });
    }
    return { message: AuthMessages.VERIFICATION_EMAIL_SENT };
  }

  /** 429 once the account (or, past that, this known network) had its share of failed password checks; counts this one first. */
  private async admitPasswordAttempt(email: string, ctx: RequestContext, signinStep?: SigninStep): Promise<void> {
    const admission = await this.signinFailures.admit(email, ctx.ip);
    if (admission.waitSeconds > 0) {
      this.audit('signin_blocked', null, ctx);
      this.metrics.rateLimited('signin_failures');
      if (signinStep) this.metrics.signin(signinStep, 'locked');
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_SIGNIN_FAILURES, admission.waitSeconds, admission.limit);
    }
    if (admission.pastAccountLimit) this.audit('signin_admitted_from_known_network', null, ctx);
  }

  private async limitMailRequests(route: MailRoute, email: string, ctx: RequestContext): Promise<void> {
    const retryAfter = await this.mailRequests.hit(route, normalizeEmail(email), ctx.ip);
    if (retryAfter > 0) {
      this.audit(`${route}_limited`, null, ctx);
      this.metrics.rateLimited('mail_requests');
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_MAIL_REQUESTS, retryAfter, this.mailRequests.maxRequests);
    }
  }

  /**
   * Queues a mail a stranger can ask for, unless the account had its hourly share, or, past that, the
   * request came from a network the account is known on and it has mails of its own left; true when queued.
   */
  private async mailWithinCap(route: MailRoute, kind: CappedKind, user: User, perHour: number, ctx: RequestContext): Promise<boolean> {
    let queued = await this.transactions.run(async (manager) => {
      await this.users.lockForUpdate(manager, user.id);
      return this.outbox.enqueueWithinCap(manager, kind, user, perHour);
    });
    if (!queued && (await this.mailRequests.ownerAllowance(route, user.email, ctx.ip, perHour))) {
      await this.transactions.run((manager) => this.outbox.enqueue(manager, kind, user));
      this.audit(`${route}_mail_past_cap_for_known_network`, user.id, ctx);
      queued = true;
    }
    if (queued) this.mailWorker.wake();
    return queued;
  }

  private alreadyExists(field: 'email' | 'username'): BadRequestException {
    return new BadRequestException(
      field === 'email' ? AuthErrors.EMAIL_ALREADY_REGISTERED : AuthErrors.USERNAME_ALREADY_TAKEN,
    );
  }

  private signinFailed(userId: number | null, reason: string, ctx: RequestContext): Promise<void> {
    return this.auditLog.recordAlone({ type: 'signin_failed', userId, client: clientOf(ctx), details: { reason } });
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
