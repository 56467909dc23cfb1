import { BadRequestException, ForbiddenException, Logger, NotFoundException, UnauthorizedException } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { TooManyRequestsException } from '../common/exceptions';
import type { TransactionRunner } from '../common/transaction-runner';
import type { MailOutbox } from '../outbox/mail-outbox.service';
import type { OutboxWorker } from '../outbox/outbox.worker';
import { PASSWORD_ONLY, type SessionsService } from '../sessions/sessions.service';
import type { AuditService } from '../audit/audit.service';
import { User } from '../users/user.entity';
import { UserAlreadyExistsError, UsersService } from '../users/users.service';
import { AccessTokenService } from './access-token.service';
import type { AuthConfig } from '../options/auth-config';
import { AuthService } from './auth.service';
import type { MfaService } from '../mfa/mfa.service';
import type { RequestContext } from './decorators';
import { ChangePasswordDto, ResetPasswordDto, SignInDto, SignUpDto, VerifyEmailDto } from './dto/requests.dto';
import type { EmailVerificationTokensService } from '../one-time-tokens/email-verification-tokens.service';
import { PasswordHasher } from '../passwords/password-hasher';
import { PasswordPolicy } from '../passwords/password-policy';
import { PasswordResetTokensService } from '../one-time-tokens/password-reset-tokens.service';
import { MailRequestLimiter, SigninFailureLimiter } from '../rate-limits/signin-failures';

const PASSWORD = 'correct horse battery';
const STORED_HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA';
const NEW_HASH = '$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3aGFzaA';

function userStub(overrides: Partial<User> = {}): User {
  return Object.assign(new User(), {
    id: 7,
    email: 'ada@example.com',
    username: 'Ada',
    usernameCanonical: 'ada',
    fullName: 'Ada Lovelace',
    hashedPassword: STORED_HASH,
    isActive: true,
    isVerified: false,
    verifiedAt: null,
    tokenVersion: 0,
    createdAt: new Date('2026-01-02T03:04:05.000Z'),
    updatedAt: new Date('2026-01-02T03:04:05.000Z'),
    ...overrides,
  });
}

function signUpDto(overrides: Partial<SignUpDto> = {}): SignUpDto {
  return Object.assign(new SignUpDto(), { email: 'ada@example.com', username: 'Ada', password: PASSWORD, ...overrides });
}

function signInDto(overrides: Partial<SignInDto> = {}): SignInDto {
  return Object.assign(new SignInDto(), { email: 'ada@example.com', password: PASSWORD, ...overrides });
}

/** Checks the class and the exact detail, which `toThrow(new X(...))` alone would not (it compares messages only). */
async function expectRejection(promise: Promise<unknown>, type: new (message: string) => Error, detail: string): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(type);
  await expect(promise).rejects.toHaveProperty('message', detail);
}

const ctx: RequestContext = { requestId: 'req-1', ip: '203.0.113.9', userAgent: 'jest' };
const NOW = new Date('2026-03-04T05:06:07.000Z');
/** Stands for the transaction every write of one flow must share. */
const TX = { transaction: 'tx' } as unknown as EntityManager;

/** `issue` mocked; `tokenResponse` the real one, around it. */
function accessTokensMock() {
  const mock = {
    issue: jest.fn().mockReturnValue({ token: 'signed.jwt.token', expiresInSeconds: 1800 }),
    config: { refreshTokenTtlSeconds: 2_592_000 },
    tokenResponse: (...args: Parameters<AccessTokenService['tokenResponse']>) => AccessTokenService.prototype.tokenResponse.apply(mock as never, args),
  };
  return mock;
}

function newMocks() {
  return {
    users: {
      findTakenField: jest.fn().mockResolvedValue(null),
      create: jest.fn(),
      lockForUpdate: jest.fn().mockResolvedValue(undefined),
      markVerified: jest.fn().mockResolvedValue(undefined),
      findByEmail: jest.fn().mockResolvedValue(null),
      findByEmailWithPassword: jest.fn().mockResolvedValue(null),
      findById: jest.fn().mockResolvedValue(null),
      findByIdWithPassword: jest.fn().mockResolvedValue(null),
      changePassword: jest.fn().mockResolvedValue(true),
      replacePasswordHash: jest.fn().mockResolvedValue(true),
    },
    hasher: {
      hash: jest.fn().mockResolvedValue(NEW_HASH),
      verify: jest.fn().mockResolvedValue('mismatch'),
      assertCapacity: jest.fn(),
    },
    accessTokens: accessTokensMock(),
    resetTokens: {
      peek: jest.fn().mockResolvedValue(null),
      redeem: jest.fn().mockResolvedValue(null),
      voidAll: jest.fn().mockResolvedValue(undefined),
    },
    verificationTokens: {
      redeem: jest.fn().mockResolvedValue(null),
    },
    signinFailures: {
      admit: jest.fn().mockResolvedValue({ waitSeconds: 0, limit: 10, pastAccountLimit: false }),
      succeeded: jest.fn().mockResolvedValue(undefined),
    },
    transactions: {
      run: jest.fn(async (work: (manager: EntityManager) => Promise<unknown>) => work(TX)),
    },
    outbox: {
      enqueue: jest.fn().mockResolvedValue(undefined),
      enqueueWithinCap: jest.fn().mockResolvedValue(true),
    },
    mailWorker: { wake: jest.fn() },
    auditLog: {
      record: jest.fn().mockResolvedValue(undefined),
      recordAlone: jest.fn().mockResolvedValue(undefined),
    },
    sessions: {
      start: jest.fn().mockResolvedValue({ sessionId: 'session-1', refreshToken: 'refresh-1' }),
      startAtVersion: jest.fn().mockResolvedValue({ sessionId: 'session-1', refreshToken: 'refresh-1' }),
      revokeAll: jest.fn().mockResolvedValue(undefined),
    },
    config: {
      refreshTokenTtlSeconds: 2_592_000,
      requireVerifiedEmail: false,
      rateLimit: { passwordResetMailsPerHour: 3, verificationMailsPerHour: 4 },
      clock: () => NOW,
    },
  };
}

describe(AuthService.name, () => {
  let mocks: ReturnType<typeof newMocks>;
  let logLines: string[];
  let sut: AuthService;

  beforeEach(() => {
    mocks = newMocks();
    logLines = [];
    jest.spyOn(Logger.prototype, 'log').mockImplementation((message: unknown) => {
      logLines.push(String(message));
    });
    sut = new AuthService(
      mocks.users as unknown as UsersService,
      mocks.hasher as unknown as PasswordHasher,
      new PasswordPolicy(),
      mocks.accessTokens as unknown as AccessTokenService,
      mocks.resetTokens as unknown as PasswordResetTokensService,
      mocks.verificationTokens as unknown as EmailVerificationTokensService,
      mocks.signinFailures as unknown as SigninFailureLimiter,
      { hit: jest.fn().mockResolvedValue(0), ownerAllowance: jest.fn().mockResolvedValue(false), maxRequests: 10 } as unknown as MailRequestLimiter,
      mocks.transactions as unknown as TransactionRunner,
      mocks.outbox as unknown as MailOutbox,
      mocks.mailWorker as unknown as OutboxWorker,
      mocks.sessions as unknown as SessionsService,
      {} as MfaService,
      mocks.auditLog as unknown as AuditService,
      mocks.config as unknown as AuthConfig,
    );
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  describe('signUp', () => {
    it('stores the hash, queues a welcome mail in the same transaction and answers with a token', async () => {
      const user = userStub();
      mocks.users.create.mockImplementation(async (_newUser, alongside: (m: EntityManager, u: User) => Promise<void>) => {
        await alongside(TX, user);
        return user;
      });

      const response = await sut.signUp(signUpDto(), ctx);

      expect(mocks.hasher.hash).toHaveBeenCalledWith(PASSWORD);
      expect(mocks.users.create).toHaveBeenCalledWith(
        { email: 'ada@example.com', username: 'Ada', fullName: null, hashedPassword: NEW_HASH },
        expect.any(Function),
      );
      expect(mocks.outbox.enqueue).toHaveBeenCalledWith(TX, 'welcome', user);
      expect(mocks.sessions.start).toHaveBeenCalledWith(TX, 7, { userAgent: 'jest', ip: '203.0.113.9' });
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
      expect(response).toEqual({
        access_token: 'signed.jwt.token',
        token_type: 'bearer',
        expires_in: 1800,
        refresh_token: 'refresh-1',
        refresh_expires_in: 2_592_000,
        user: {
          id: 7,
          email: 'ada@example.com',
          username: 'Ada',
          full_name: 'Ada Lovelace',
          is_active: true,
          is_verified: false,
          created_at: '2026-01-02T03:04:05.000Z',
        },
      });
      expect(JSON.stringify(response)).not.toContain(STORED_HASH);
    });

    it.each([
      ['email', 'Email already registered'],
      ['username', 'Username already taken'],
    ] as const)('refuses a taken %s before hashing', async (field, detail) => {
      mocks.users.findTakenField.mockResolvedValue(field);

      await expectRejection(sut.signUp(signUpDto(), ctx), BadRequestException, detail);
      expect(mocks.hasher.hash).not.toHaveBeenCalled();
      expect(mocks.users.create).not.toHaveBeenCalled();
    });

    it('answers a lost sign-up race on the username with 400 "Username already taken"', async () => {
      mocks.users.create.mockRejectedValue(new UserAlreadyExistsError('username'));

      const promise = sut.signUp(signUpDto(), ctx);

      await expect(promise).rejects.toBeInstanceOf(BadRequestException);
      await expect(promise).rejects.toHaveProperty('message', 'Username already taken');
      expect(mocks.mailWorker.wake).not.toHaveBeenCalled();
    });

    it('answers a lost sign-up race on the email with 400 "Email already registered"', async () => {
      mocks.users.create.mockRejectedValue(new UserAlreadyExistsError('email'));

      await expectRejection(sut.signUp(signUpDto(), ctx), BadRequestException, 'Email already registered');
    });

    it('lets any other failure through untouched', async () => {
      const failure = new Error('connection reset');
      mocks.users.create.mockRejectedValue(failure);

      await expect(sut.signUp(signUpDto(), ctx)).rejects.toBe(failure);
    });
  });

  describe('signIn', () => {
    it('checks an unknown email against the dummy hash, the attempt counted first', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(null);

      await expectRejection(sut.signIn(signInDto({ email: 'Nobody@Example.com ' }), ctx), UnauthorizedException, 'Invalid email or password');
      expect(mocks.hasher.verify).toHaveBeenCalledWith(null, PASSWORD);
      expect(mocks.signinFailures.admit).toHaveBeenCalledWith('nobody@example.com', ctx.ip);
    });

    it('answers a wrong password exactly as an unknown email', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValue('mismatch');

      await expectRejection(sut.signIn(signInDto({ password: 'wrong password' }), ctx), UnauthorizedException, 'Invalid email or password');
      expect(mocks.hasher.verify).toHaveBeenCalledWith(STORED_HASH, 'wrong password');
      expect(mocks.signinFailures.admit).toHaveBeenCalledWith('ada@example.com', ctx.ip);
      expect(mocks.signinFailures.succeeded).not.toHaveBeenCalled();
    });

    it('refuses a locked account with 429 without checking the password', async () => {
      mocks.signinFailures.admit.mockResolvedValue({ waitSeconds: 120, limit: 10, pastAccountLimit: true });
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub());

      const promise = sut.signIn(signInDto(), ctx);

      await expect(promise).rejects.toBeInstanceOf(TooManyRequestsException);
      await expect(promise).rejects.toMatchObject({ retryAfterSeconds: 120 });
      expect(mocks.hasher.verify).not.toHaveBeenCalled();
      expect(mocks.users.findByEmailWithPassword).not.toHaveBeenCalled();
    });

    it('asks the limiter about the normalised email', async () => {
      await expect(sut.signIn(signInDto({ email: '  ADA@Example.COM ' }), ctx)).rejects.toThrow(UnauthorizedException);

      expect(mocks.signinFailures.admit).toHaveBeenCalledWith('ada@example.com', ctx.ip);
      expect(mocks.users.findByEmailWithPassword).toHaveBeenCalledWith('ada@example.com');
    });

    it('answers with a token and records the success: failures cleared, the network known', async () => {
      const user = userStub();
      mocks.users.findByEmailWithPassword.mockResolvedValue(user);
      mocks.hasher.verify.mockResolvedValue('match');

      const response = await sut.signIn(signInDto(), ctx);

      expect(response.access_token).toBe('signed.jwt.token');
      expect(response.user).not.toHaveProperty('hashed_password');
      expect(JSON.stringify(response)).not.toContain(STORED_HASH);
      expect(mocks.sessions.startAtVersion).toHaveBeenCalledWith(TX, 7, user.tokenVersion, { userAgent: 'jest', ip: '203.0.113.9' }, PASSWORD_ONLY);
      expect(mocks.accessTokens.issue).toHaveBeenCalledWith(user, expect.objectContaining({ sessionId: 'session-1' }));
      expect(response.refresh_token).toBe('refresh-1');
      expect(mocks.signinFailures.succeeded).toHaveBeenCalledWith('ada@example.com', ctx.ip);
      expect(mocks.users.replacePasswordHash).not.toHaveBeenCalled();
    });

    it('rehashes the password when the stored hash is stale', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValue('match-needs-rehash');

      await sut.signIn(signInDto(), ctx);

      expect(mocks.hasher.hash).toHaveBeenCalledWith(PASSWORD);
      expect(mocks.users.replacePasswordHash).toHaveBeenCalledWith(7, STORED_HASH, NEW_HASH);
      expect(mocks.users.changePassword).not.toHaveBeenCalled();
    });

    it('opens no session when a password change committed after the check', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ tokenVersion: 0 }));
      mocks.hasher.verify.mockResolvedValue('match');
      mocks.sessions.startAtVersion.mockResolvedValue(null); // the version it was asked for is gone

      await expectRejection(sut.signIn(signInDto(), ctx), UnauthorizedException, 'Invalid email or password');
      expect(mocks.sessions.startAtVersion).toHaveBeenCalledWith(TX, 7, 0, expect.anything(), PASSWORD_ONLY);
      expect(mocks.accessTokens.issue).not.toHaveBeenCalled();
    });

    it('refuses an inactive account with 403 after a correct password', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isActive: false }));
      mocks.hasher.verify.mockResolvedValue('match');

      await expectRejection(sut.signIn(signInDto(), ctx), ForbiddenException, 'User account is inactive');
      expect(mocks.accessTokens.issue).not.toHaveBeenCalled();
    });

    it('lets an unverified account sign in while verification is not required', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isVerified: false }));
      mocks.hasher.verify.mockResolvedValue('match');

      await expect(sut.signIn(signInDto(), ctx)).resolves.toHaveProperty('access_token');
    });

    it('refuses an unverified account with 403 Email not verified when verification is required', async () => {
      mocks.config.requireVerifiedEmail = true;
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isVerified: false }));
      mocks.hasher.verify.mockResolvedValue('match');

      await expectRejection(sut.signIn(signInDto(), ctx), ForbiddenException, 'Email not verified');
      expect(mocks.accessTokens.issue).not.toHaveBeenCalled();
      expect(logLines.join('\n')).toContain('event=signin_unverified user_id=7');
    });

    it('answers 401, not 403 Email not verified, for an unverified account with a wrong password', async () => {
      mocks.config.requireVerifiedEmail = true;
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isVerified: false }));

      await expect(sut.signIn(signInDto({ password: 'wrong password' }), ctx)).rejects.toThrow(UnauthorizedException);
    });

    it('signs a verified account in when verification is required', async () => {
      mocks.config.requireVerifiedEmail = true;
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isVerified: true }));
      mocks.hasher.verify.mockResolvedValue('match');

      await expect(sut.signIn(signInDto(), ctx)).resolves.toHaveProperty('access_token');
    });

    it('answers 401, not 403, for an inactive account with a wrong password', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub({ isActive: false }));

      await expect(sut.signIn(signInDto({ password: 'wrong password' }), ctx)).rejects.toThrow(UnauthorizedException);
    });

    it('never logs the password or the hash', async () => {
      mocks.users.findByEmailWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValueOnce('mismatch').mockResolvedValueOnce('match');

      await expect(sut.signIn(signInDto({ password: 'wrong password' }), ctx)).rejects.toThrow(UnauthorizedException);
      await sut.signIn(signInDto(), ctx);

      expect(logLines).toHaveLength(2);
      expect(logLines.join('\n')).toContain('request_id=req-1');
      expect(logLines.join('\n')).not.toMatch(/wrong password|correct horse|argon2/);
    });
  });

  describe('forgotPassword', () => {
    it('queues a reset mail for a known user within the cap, holding the account lock', async () => {
      const user = userStub();
      mocks.users.findByEmail.mockResolvedValue(user);

      const response = await sut.forgotPassword({ email: 'ada@example.com' }, ctx);
      await sut.settled(); // the mail is queued after the answer

      expect(mocks.users.lockForUpdate).toHaveBeenCalledWith(TX, 7);
      expect(mocks.outbox.enqueueWithinCap).toHaveBeenCalledWith(TX, 'password-reset', user, 3);
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
      expect(response).toEqual({ message: 'If the email is registered, a password reset link has been sent' });
    });

    it('answers an unknown email the same way, queueing nothing', async () => {
      const unknown = await sut.forgotPassword({ email: 'nobody@example.com' }, ctx);
      mocks.users.findByEmail.mockResolvedValue(userStub());
      const known = await sut.forgotPassword({ email: 'ada@example.com' }, ctx);

      expect(unknown).toEqual(known);
      expect(mocks.outbox.enqueueWithinCap).toHaveBeenCalledTimes(1);
    });

    it('answers the same when the account has had its share of reset mails, and logs the cap', async () => {
      mocks.users.findByEmail.mockResolvedValue(userStub());
      const allowed = await sut.forgotPassword({ email: 'ada@example.com' }, ctx);
      await sut.settled();
      mocks.outbox.enqueueWithinCap.mockResolvedValue(false);
      const capped = await sut.forgotPassword({ email: 'ada@example.com' }, ctx);
      await sut.settled();

      expect(capped).toEqual(allowed);
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
      expect(logLines.join('\n')).toContain('event=password_reset_mail_capped user_id=7');
    });
  });

  describe('resetPassword', () => {
    const dto = Object.assign(new ResetPasswordDto(), { token: 'reset-token', new_password: 'a new password' });

    it('refuses a token that is not redeemable before hashing anything', async () => {
      await expectRejection(sut.resetPassword(dto, ctx), BadRequestException, 'Invalid or expired token');
      expect(mocks.resetTokens.peek).toHaveBeenCalledWith('reset-token');
      expect(mocks.hasher.hash).not.toHaveBeenCalled();
      expect(mocks.transactions.run).not.toHaveBeenCalled();
    });

    it('refuses a token another request redeemed first, changing nothing', async () => {
      mocks.resetTokens.peek.mockResolvedValue(7);
      mocks.resetTokens.redeem.mockResolvedValue(null);

      await expectRejection(sut.resetPassword(dto, ctx), BadRequestException, 'Invalid or expired token');
      expect(mocks.users.changePassword).not.toHaveBeenCalled();
      expect(mocks.outbox.enqueue).not.toHaveBeenCalled();
    });

    it('answers 404 when the token user is gone', async () => {
      mocks.resetTokens.peek.mockResolvedValue(7);
      mocks.resetTokens.redeem.mockResolvedValue(7);

      await expectRejection(sut.resetPassword(dto, ctx), NotFoundException, 'User not found');
    });

    it('in one transaction: redeems, stores the new hash, verifies the address and queues the notice', async () => {
      const user = userStub();
      mocks.resetTokens.peek.mockResolvedValue(7);
      mocks.resetTokens.redeem.mockResolvedValue(7);
      mocks.users.findById.mockResolvedValue(user);

      await expect(sut.resetPassword(dto, ctx)).resolves.toEqual({ message: 'Password reset successfully' });
      expect(mocks.transactions.run).toHaveBeenCalledTimes(1);
      expect(mocks.hasher.hash).toHaveBeenCalledWith('a new password');
      expect(mocks.resetTokens.redeem).toHaveBeenCalledWith(TX, 'reset-token');
      expect(mocks.users.changePassword).toHaveBeenCalledWith(TX, 7, NEW_HASH);
      expect(mocks.sessions.revokeAll).toHaveBeenCalledWith(TX, 7);
      expect(mocks.users.markVerified).toHaveBeenCalledWith(TX, 7, NOW);
      expect(mocks.outbox.enqueue).toHaveBeenCalledWith(TX, 'password-changed', user);
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
      expect(mocks.signinFailures.succeeded).toHaveBeenCalledWith('ada@example.com', ctx.ip);
    });
  });

  describe('changePassword', () => {
    const dto = Object.assign(new ChangePasswordDto(), { old_password: PASSWORD, new_password: 'a new password' });

    it('refuses a wrong current password', async () => {
      mocks.users.findByIdWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValue('mismatch');

      await expectRejection(sut.changePassword(userStub(), dto, ctx), BadRequestException, 'Incorrect current password');
      expect(mocks.users.changePassword).not.toHaveBeenCalled();
    });

    it('answers 404 when the user is gone', async () => {
      await expectRejection(sut.changePassword(userStub(), dto, ctx), NotFoundException, 'User not found');
    });

    it('refuses with 400 when another change committed after the current password was checked', async () => {
      mocks.users.findByIdWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValue('match');
      mocks.users.changePassword.mockResolvedValue(false);

      await expectRejection(sut.changePassword(userStub(), dto, ctx), BadRequestException, 'Incorrect current password');
      expect(mocks.sessions.revokeAll).not.toHaveBeenCalled();
      expect(mocks.outbox.enqueue).not.toHaveBeenCalled();
    });

    it.each(['match', 'match-needs-rehash'])('stores the new hash after a %s', async (check) => {
      mocks.users.findByIdWithPassword.mockResolvedValue(userStub());
      mocks.hasher.verify.mockResolvedValue(check);

      await expect(sut.changePassword(userStub(), dto, ctx)).resolves.toEqual({ message: 'Password changed successfully' });
      expect(mocks.hasher.verify).toHaveBeenCalledWith(STORED_HASH, PASSWORD);
      expect(mocks.users.changePassword).toHaveBeenCalledWith(TX, 7, NEW_HASH, STORED_HASH);
      expect(mocks.sessions.revokeAll).toHaveBeenCalledWith(TX, 7);
      expect(mocks.resetTokens.voidAll).toHaveBeenCalledWith(TX, 7);
      expect(mocks.outbox.enqueue).toHaveBeenCalledWith(TX, 'password-changed', expect.objectContaining({ id: 7 }));
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
    });
  });

  describe('verifyEmail', () => {
    const dto = Object.assign(new VerifyEmailDto(), { token: 'verification-token' });

    it('marks the token user verified in the transaction that redeems the token', async () => {
      mocks.verificationTokens.redeem.mockResolvedValue(7);

      await expect(sut.verifyEmail(dto, ctx)).resolves.toEqual({ message: 'Email verified successfully' });
      expect(mocks.verificationTokens.redeem).toHaveBeenCalledWith(TX, 'verification-token');
      expect(mocks.users.markVerified).toHaveBeenCalledWith(TX, 7, NOW);
      expect(logLines.join('\n')).not.toContain('verification-token');
    });

    it('refuses a token that does not redeem with 400 Invalid or expired token', async () => {
      await expectRejection(sut.verifyEmail(dto, ctx), BadRequestException, 'Invalid or expired token');
      expect(mocks.users.markVerified).not.toHaveBeenCalled();
    });
  });

  describe('resendVerification', () => {
    const message = { message: 'If the email is registered and not yet verified, a verification link has been sent' };

    it('queues a verification mail for an unverified account within the cap', async () => {
      const user = userStub();
      mocks.users.findByEmail.mockResolvedValue(user);

      await expect(sut.resendVerification({ email: 'ada@example.com' }, ctx)).resolves.toEqual(message);
      await sut.settled(); // the mail is queued after the answer
      expect(mocks.users.lockForUpdate).toHaveBeenCalledWith(TX, 7);
      expect(mocks.outbox.enqueueWithinCap).toHaveBeenCalledWith(TX, 'email-verification', user, 4);
      expect(mocks.mailWorker.wake).toHaveBeenCalledTimes(1);
    });

    it.each([
      ['an unknown email', null],
      ['a verified account', userStub({ isVerified: true })],
    ])('answers %s the same way, queueing nothing', async (_case, user) => {
      mocks.users.findByEmail.mockResolvedValue(user);

      await expect(sut.resendVerification({ email: 'ada@example.com' }, ctx)).resolves.toEqual(message);
      await sut.settled();
      expect(mocks.outbox.enqueueWithinCap).not.toHaveBeenCalled();
      expect(mocks.mailWorker.wake).not.toHaveBeenCalled();
    });

    it('answers the same when the account has had its share, without waking the worker', async () => {
      mocks.users.findByEmail.mockResolvedValue(userStub());
      mocks.outbox.enqueueWithinCap.mockResolvedValue(false);

      await expect(sut.resendVerification({ email: 'ada@example.com' }, ctx)).resolves.toEqual(message);
      await sut.settled();
      expect(mocks.mailWorker.wake).not.toHaveBeenCalled();
      expect(logLines.join('\n')).toContain('event=verification_mail_capped user_id=7');
    });
  });
});
