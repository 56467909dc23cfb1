import { BadRequestException, ForbiddenException, Injectable, Logger, NotFoundException, UnauthorizedException } from '@nestjs/common';
import { TooManyRequestsException } from '../common/exceptions';
import { MailService } from '../mail/mail.service';
import { User } from '../users/user.entity';
import { normalizeEmail, UserAlreadyExistsError, UsersService } from '../users/users.service';
import { AccessTokenService } from './access-token.service';
import { AuthErrors, AuthMessages } from './auth.errors';
import type { RequestContext } from './decorators';
import { ChangePasswordDto, ForgotPasswordDto, ResetPasswordDto, SignInDto, SignUpDto } from './dto/requests.dto';
import { SuccessResponse, TokenResponse, UserResponse } from './dto/responses.dto';
import { PasswordHasher } from './password-hasher';
import { PasswordResetTokensService } from './password-reset-tokens.service';
import { SigninFailureLimiter } from './signin-failures';

/** The seed's auth flows. Throws HTTP exceptions with the contract's messages; never logs a secret. */
@Injectable()
export class AuthService {
  private readonly logger = new Logger('AuthEvents');

  constructor(
    private readonly users: UsersService,
    private readonly hasher: PasswordHasher,
    private readonly accessTokens: AccessTokenService,
    private readonly resetTokens: PasswordResetTokensService,
    private readonly signinFailures: SigninFailureLimiter,
    private readonly mail: MailService,
  ) {}

  async signUp(dto: SignUpDto, ctx: RequestContext): Promise<TokenResponse> {
    const taken = await this.users.findTakenField(dto.email, dto.username);
    if (taken) throw this.alreadyExists(taken);
    let user: User;
    try {
      user = await this.users.create({
        email: dto.email,
        username: dto.username,
        fullName: dto.full_name ?? null,
        hashedPassword: await this.hasher.hash(dto.password),
      });
    } catch (error) {
      if (error instanceof UserAlreadyExistsError) throw this.alreadyExists(error.field);
      throw error;
    }
    this.mail.sendWelcome(user);
    this.audit('signed_up', user.id, ctx);
    return this.tokenResponse(user);
  }

  async signIn(dto: SignInDto, ctx: RequestContext): Promise<TokenResponse> {
    const email = normalizeEmail(dto.email);
    const retryAfter = await this.signinFailures.retryAfterSeconds(email);
    if (retryAfter > 0) {
      this.audit('signin_blocked', null, ctx);
      throw new TooManyRequestsException(AuthErrors.TOO_MANY_SIGNIN_FAILURES, retryAfter, this.signinFailures.maxFailures);
    }
    const user = await this.users.findByEmailWithPassword(email);
    const check = await this.hasher.verify(user?.hashedPassword ?? null, dto.password);
    if (!user || check === 'mismatch') {
      await this.signinFailures.recordFailure(email);
      this.audit('signin_failed', user?.id ?? null, ctx);
      throw new UnauthorizedException(AuthErrors.INVALID_CREDENTIALS);
    }
    if (!user.isActive) {
      this.audit('signin_inactive', user.id, ctx);
      throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    }
    if (check === 'match-needs-rehash') {
      await this.users.replacePasswordHash(user.id, await this.hasher.hash(dto.password));
    }
    await this.signinFailures.clear(email);
    this.audit('signed_in', user.id, ctx);
    return this.tokenResponse(user);
  }

  async forgotPassword(dto: ForgotPasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.users.findByEmail(dto.email);
    if (user) {
      this.mail.sendPasswordReset(user, await this.resetTokens.issue(user.id));
      this.audit('password_reset_requested', user.id, ctx);
    } else {
      this.audit('password_reset_requested_unknown_email', null, ctx);
    }
    return { message: AuthMessages.RESET_EMAIL_SENT };
  }

  async resetPassword(dto: ResetPasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    const userId = await this.resetTokens.redeem(dto.token);
    if (userId === null) throw new BadRequestException(AuthErrors.INVALID_RESET_TOKEN);
    const user = await this.users.findById(userId);
    if (!user) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    await this.users.changePassword(user.id, await this.hasher.hash(dto.new_password));
    // The owner just proved control of the mailbox: a lockout built up by someone guessing ends here.
    await this.signinFailures.clear(user.email);
    this.audit('password_reset', user.id, ctx);
    return { message: AuthMessages.PASSWORD_RESET };
  }

  async changePassword(currentUser: User, dto: ChangePasswordDto, ctx: RequestContext): Promise<SuccessResponse> {
    const user = await this.users.findByIdWithPassword(currentUser.id);
    if (!user) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    if ((await this.hasher.verify(user.hashedPassword, dto.old_password)) === 'mismatch') {
      this.audit('password_change_failed', user.id, ctx);
      throw new BadRequestException(AuthErrors.INCORRECT_CURRENT_PASSWORD);
    }
    await this.users.changePassword(user.id, await this.hasher.hash(dto.new_password));
    this.audit('password_changed', user.id, ctx);
    return { message: AuthMessages.PASSWORD_CHANGED };
  }

  private tokenResponse(user: User): TokenResponse {
    const { token, expiresInSeconds } = this.accessTokens.issue(user);
    return {
      access_token: token,
      token_type: 'bearer',
      expires_in: expiresInSeconds,
      user: UserResponse.from(user),
    };
  }

  private alreadyExists(field: 'email' | 'username'): BadRequestException {
    return new BadRequestException(
      field === 'email' ? AuthErrors.EMAIL_ALREADY_REGISTERED : AuthErrors.USERNAME_ALREADY_TAKEN,
    );
  }

  /** One line per auth event: what, which user, which request, from where. Never a credential. */
  private audit(event: string, userId: number | null, ctx: RequestContext): void {
    this.logger.log(`event=${event} user_id=${userId ?? '-'} request_id=${ctx.requestId} ip=${ctx.ip}`);
  }
}
