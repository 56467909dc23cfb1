import {
  Controller,
  Delete,
  Get,
  Header,
  HttpCode,
  HttpStatus,
  NotFoundException,
  Param,
  Patch,
  Post,
  Req,
  Res,
  UseFilters,
  UseGuards,
} from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '../common/openapi';
import { AdminService } from './admin.service';
import { AccountService } from '../account/account.service';
import { EventPageResponse, MAX_PAGE_SIZE, PageQueryDto } from './dto/admin.dto';
import { ValidQuery } from './validated-query';
import { ProblemDetailsFilter } from '../common/problem-details.filter';
import { User } from '../users/user.entity';
import { AuthThrottlerGuard } from '../rate-limits/auth-throttler.guard';
import { AuthErrors, AuthMessages } from '../common/auth.errors';
import { AuthService } from './auth.service';
import { BearerJsonRoute, BearerRoute, PublicJsonRoute, PublicRoute } from './api-responses';
import { SigningKeys } from '../signing-keys/signing-keys.service';
import { CurrentSessionId, CurrentUser, RequestContext, RequestCtx, RequireAal } from './decorators';
import {
  ChangeEmailDto,
  ChangePasswordDto,
  ConfirmEmailChangeDto,
  DeleteAccountDto,
  ForgotPasswordDto,
  MfaCodeDto,
  RefreshTokenDto,
  ResendVerificationDto,
  ResetPasswordDto,
  SignInDto,
  SignInMfaDto,
  SignUpDto,
  UpdateMeDto,
  VerifyEmailDto,
} from './dto/requests.dto';
import {
  AccountExportResponse,
  JwksResponse,
  RecoveryCodesResponse,
  SessionResponse,
  SuccessResponse,
  TokenResponse,
  TotpSetupResponse,
  UserResponse,
} from './dto/responses.dto';
import { RefreshTokenCookie } from './refresh-token-cookie';
import { ValidBody } from './validated-body';

/** What the routes need of Express's and Fastify's request and response objects. */
type HttpRequest = Parameters<RefreshTokenCookie['read']>[0];
type HttpResponse = Parameters<RefreshTokenCookie['deliver']>[0];

/** The refusals of the routes that take the current password and a recent sign-in: change-email, DELETE /me. */
const PASSWORD_CONFIRMED_PROBLEMS = {
  400: [AuthErrors.INCORRECT_CURRENT_PASSWORD],
  403: [AuthErrors.ADDITIONAL_AUTH_REQUIRED, AuthErrors.RECENT_SIGNIN_REQUIRED],
  429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES],
};

@ApiTags('Authentication')
@Controller()
@UseGuards(AuthThrottlerGuard)
@UseFilters(ProblemDetailsFilter)
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly refreshCookie: RefreshTokenCookie,
    private readonly signingKeys: SigningKeys,
    private readonly admin: AdminService,
    private readonly account: AccountService,
  ) {}

  @Post('signup')
  @PublicJsonRoute({
    problems: { 400: [AuthErrors.EMAIL_ALREADY_REGISTERED, AuthErrors.USERNAME_ALREADY_TAKEN] },
    unexpected: AuthErrors.SIGNUP_FAILED,
    hashes: true,
  })
  @ApiOperation({ summary: 'Create an account and sign in; sends a welcome email with a verification link' })
  @ApiCreatedResponse({ type: TokenResponse })
  async signUp(
    @ValidBody() dto: SignUpDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.auth.signUp(dto, ctx));
  }

  @Post('signin')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: {
      401: [AuthErrors.INVALID_CREDENTIALS],
      403: [AuthErrors.INACTIVE_USER, AuthErrors.EMAIL_NOT_VERIFIED, AuthErrors.MFA_REQUIRED],
      429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES],
    },
    unexpected: AuthErrors.SIGNIN_FAILED,
    hashes: true,
  })
  @ApiOperation({
    summary: 'Exchange email and password for an access token; with TOTP on, a 403 with `mfa_token` for `/signin/mfa` instead',
  })
  @ApiOkResponse({ type: TokenResponse })
  async signIn(
    @ValidBody() dto: SignInDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.auth.signIn(dto, ctx));
  }

  @Post('signin/mfa')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 401: [AuthErrors.INVALID_MFA_CODE, AuthErrors.INVALID_MFA_TOKEN], 429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES] },
    unexpected: AuthErrors.SIGNIN_FAILED,
  })
  @ApiOperation({ summary: 'Finish a sign-in with TOTP: the `mfa_token` and a code (or a recovery code); the session is `aal2`' })
  @ApiOkResponse({ type: TokenResponse })
  async signInMfa(
    @ValidBody() dto: SignInMfaDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.auth.signInMfa(dto, ctx));
  }

  @Post('mfa/totp/setup')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ problems: { 400: [AuthErrors.MFA_ALREADY_ENABLED] }, unexpected: AuthErrors.MFA_FAILED })
  @ApiOperation({ summary: 'Start TOTP: a new secret, its otpauth URL and a QR code; pending until confirmed' })
  @ApiOkResponse({ type: TotpSetupResponse })
  setUpTotp(@CurrentUser() user: User, @RequestCtx() ctx: RequestContext): Promise<TotpSetupResponse> {
    return this.auth.setUpTotp(user, ctx);
  }

  @Post('mfa/totp/confirm')
  @HttpCode(HttpStatus.OK)
  @BearerJsonRoute({
    problems: { 400: [AuthErrors.INVALID_MFA_CODE, AuthErrors.NO_PENDING_MFA], 429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES] },
    unexpected: AuthErrors.MFA_FAILED,
  })
  @ApiOperation({ summary: 'Turn TOTP on with a first code; every other session ends; this one is aal2 from its next refresh' })
  @ApiOkResponse({ type: RecoveryCodesResponse })
  confirmTotp(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: MfaCodeDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<RecoveryCodesResponse> {
    return this.auth.confirmTotp(user, sessionId, dto, ctx);
  }

  @Post('mfa/totp/disable')
  @HttpCode(HttpStatus.OK)
  @RequireAal('aal2')
  @BearerJsonRoute({
    problems: { 400: [AuthErrors.INVALID_MFA_CODE], 403: [AuthErrors.ADDITIONAL_AUTH_REQUIRED], 429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES] },
    unexpected: AuthErrors.MFA_FAILED,
  })
  @ApiOperation({ summary: 'Turn TOTP off with a code (TOTP or recovery), from an aal2 session' })
  @ApiOkResponse({ type: SuccessResponse })
  disableTotp(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: MfaCodeDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    return this.auth.disableTotp(user, dto, ctx, sessionId);
  }

  @Post('mfa/recovery-codes')
  @HttpCode(HttpStatus.OK)
  @RequireAal('aal2')
  @BearerRoute({ problems: { 403: [AuthErrors.ADDITIONAL_AUTH_REQUIRED] }, unexpected: AuthErrors.MFA_FAILED })
  @ApiOperation({ summary: 'A new set of ten recovery codes, from an aal2 session; the old set is void' })
  @ApiOkResponse({ type: RecoveryCodesResponse })
  newRecoveryCodes(@CurrentUser() user: User, @CurrentSessionId() sessionId: string, @RequestCtx() ctx: RequestContext): Promise<RecoveryCodesResponse> {
    return this.auth.newRecoveryCodes(user, ctx, sessionId);
  }

  @Post('refresh')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 401: [AuthErrors.INVALID_REFRESH_TOKEN], 403: [AuthErrors.INACTIVE_USER, AuthErrors.EMAIL_NOT_VERIFIED] },
    unexpected: AuthErrors.REFRESH_FAILED,
  })
  @ApiOperation({
    summary: 'Exchange a refresh token for a new access token and a new refresh token',
    description:
      'The presented refresh token is spent. Presented again within REFRESH_TOKEN_REUSE_GRACE_SECONDS it gets the ' +
      'same successor (parallel tabs); later, the whole session is revoked. In cookie mode the token is read ' +
      'from the `refresh_token` cookie and the new one is set there.',
  })
  @ApiOkResponse({ type: TokenResponse })
  async refresh(
    @ValidBody() dto: RefreshTokenDto,
    @RequestCtx() ctx: RequestContext,
    @Req() request: HttpRequest,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    const presented = this.refreshCookie.read(request, dto.refresh_token);
    return this.refreshCookie.deliver(response, await this.auth.refresh(presented, ctx));
  }

  @Post('signout')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ unexpected: AuthErrors.SIGNOUT_FAILED })
  @ApiOperation({ summary: 'End the current session: its access and refresh tokens stop working at once' })
  @ApiOkResponse({ type: SuccessResponse })
  signOut(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<SuccessResponse> {
    this.refreshCookie.clear(response);
    return this.auth.signOut(user, sessionId, ctx);
  }

  @Post('signout-all')
  @HttpCode(HttpStatus.OK)
  @BearerRoute({ unexpected: AuthErrors.SIGNOUT_FAILED })
  @ApiOperation({ summary: 'End every session of the user, this one included' })
  @ApiOkResponse({ type: SuccessResponse })
  signOutEverywhere(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<SuccessResponse> {
    this.refreshCookie.clear(response);
    return this.auth.signOutEverywhere(user, ctx, sessionId);
  }

  @Get('sessions')
  @BearerRoute({ unexpected: AuthErrors.SESSIONS_FAILED })
  @ApiOperation({ summary: "The user's live sessions, most recently used first; `current` marks this one" })
  @ApiOkResponse({ type: [SessionResponse] })
  listSessions(@CurrentUser() user: User, @CurrentSessionId() sessionId: string): Promise<SessionResponse[]> {
    return this.auth.listSessions(user, sessionId);
  }

  @Delete('sessions/:id')
  @BearerRoute({ problems: { 404: [AuthErrors.SESSION_NOT_FOUND] }, unexpected: AuthErrors.SESSIONS_FAILED })
  @ApiOperation({ summary: "End one of the user's sessions (sign a lost device out)" })
  @ApiOkResponse({ type: SuccessResponse })
  endSession(
    @CurrentUser() user: User,
    @Param('id') sessionId: string,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    return this.auth.endSession(user, sessionId, ctx);
  }

  @Post('forgot-password')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({ problems: { 429: [AuthErrors.TOO_MANY_MAIL_REQUESTS] }, unexpected: AuthErrors.FORGOT_PASSWORD_FAILED })
  @ApiOperation({ summary: 'Email a reset link; answers the same whether or not the email has an account' })
  @ApiOkResponse({ type: SuccessResponse })
  forgotPassword(@ValidBody() dto: ForgotPasswordDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.forgotPassword(dto, ctx);
  }

  @Post('reset-password')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 400: [AuthErrors.INVALID_RESET_TOKEN], 404: [AuthErrors.USER_NOT_FOUND] },
    unexpected: AuthErrors.RESET_PASSWORD_FAILED,
    hashes: true,
  })
  @ApiOperation({
    summary: 'Set a new password with the token from the reset email; ends every session and mails a notice',
  })
  @ApiOkResponse({ type: SuccessResponse })
  resetPassword(@ValidBody() dto: ResetPasswordDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.resetPassword(dto, ctx);
  }

  @Post('verify-email')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({ problems: { 400: [AuthErrors.INVALID_VERIFICATION_TOKEN] }, unexpected: AuthErrors.VERIFY_EMAIL_FAILED })
  @ApiOperation({ summary: 'Confirm the email address with the token from the verification link' })
  @ApiOkResponse({ type: SuccessResponse })
  verifyEmail(@ValidBody() dto: VerifyEmailDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.verifyEmail(dto, ctx);
  }

  @Post('resend-verification')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 429: [AuthErrors.TOO_MANY_MAIL_REQUESTS] },
    unexpected: AuthErrors.RESEND_VERIFICATION_FAILED,
  })
  @ApiOperation({
    summary: 'Email a new verification link; answers the same whether or not the email has an unverified account',
  })
  @ApiOkResponse({ type: SuccessResponse })
  resendVerification(@ValidBody() dto: ResendVerificationDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.resendVerification(dto, ctx);
  }

  @Post('change-password')
  @HttpCode(HttpStatus.OK)
  @RequireAal('aal2')
  @BearerJsonRoute({
    problems: {
      400: [AuthErrors.INCORRECT_CURRENT_PASSWORD],
      403: [AuthErrors.ADDITIONAL_AUTH_REQUIRED],
      429: [AuthErrors.TOO_MANY_SIGNIN_FAILURES],
    },
    unexpected: AuthErrors.CHANGE_PASSWORD_FAILED,
    hashes: true,
  })
  @ApiOperation({ summary: 'Change the password; ends every session, including this one, and mails a notice' })
  @ApiOkResponse({ type: SuccessResponse })
  changePassword(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: ChangePasswordDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    return this.auth.changePassword(user, dto, ctx, sessionId);
  }

  @Get('me')
  @BearerRoute()
  @ApiOperation({ summary: 'The signed-in user' })
  @ApiOkResponse({ type: UserResponse })
  me(@CurrentUser() user: User): UserResponse {
    return UserResponse.from(user);
  }

  @Patch('me')
  @BearerJsonRoute({ problems: { 400: [AuthErrors.USERNAME_ALREADY_TAKEN] }, unexpected: AuthErrors.PROFILE_UPDATE_FAILED })
  @ApiOperation({ summary: 'Change the username or full name (`full_name: null` clears it; `{}` changes nothing)' })
  @ApiOkResponse({ type: UserResponse })
  updateMe(@CurrentUser() user: User, @ValidBody() dto: UpdateMeDto, @RequestCtx() ctx: RequestContext): Promise<UserResponse> {
    return this.auth.updateMe(user, dto, ctx);
  }

  @Post('change-email')
  @HttpCode(HttpStatus.OK)
  @RequireAal('aal2')
  @BearerJsonRoute({
    problems: PASSWORD_CONFIRMED_PROBLEMS,
    unexpected: AuthErrors.CHANGE_EMAIL_FAILED,
    hashes: true,
  })
  @ApiOperation({
    summary: 'Ask to move the account to another address: a confirmation link goes there, a notice to the current one',
    description:
      'The same answer whether or not the new address is free: when another account has it, its owner gets a notice ' +
      'instead and nothing changes. At most 5 requests an hour per account send mail; past that the answer is the same ' +
      'and nothing is sent. A wrong password counts as a failed sign-in. Nothing changes until the link is followed ' +
      '(`/confirm-email-change`); a newer request voids older links.',
  })
  @ApiOkResponse({ type: SuccessResponse })
  async changeEmail(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: ChangeEmailDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    await this.account.requestEmailChange(user, sessionId, dto.new_email, dto.password, ctx);
    return { message: AuthMessages.EMAIL_CHANGE_REQUESTED };
  }

  @Post('confirm-email-change')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 400: [AuthErrors.INVALID_EMAIL_CHANGE_TOKEN, AuthErrors.EMAIL_ALREADY_REGISTERED] },
    unexpected: AuthErrors.CHANGE_EMAIL_FAILED,
  })
  @ApiOperation({
    summary: 'Move the account to the new address with the token from the link mailed there',
    description: 'The address counts as verified; every session of the account ends but the one that asked for the change.',
  })
  @ApiOkResponse({ type: SuccessResponse })
  async confirmEmailChange(@ValidBody() dto: ConfirmEmailChangeDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    await this.account.confirmEmailChange(dto.token, ctx);
    return { message: AuthMessages.EMAIL_CHANGED };
  }

  @Delete('me')
  @RequireAal('aal2')
  @BearerJsonRoute({
    problems: PASSWORD_CONFIRMED_PROBLEMS,
    unexpected: AuthErrors.DELETE_ACCOUNT_FAILED,
    hashes: true,
  })
  @ApiOperation({
    summary: 'Delete the account and everything it holds; its tokens stop working at once, a goodbye is mailed',
    description:
      'The user, sessions, tokens, identities, second factor and pending mail go in one transaction. Audit events ' +
      'stay for their retention without client address or user agent; the goodbye\'s outbox row is deleted once ' +
      'it is sent (or dead). The address may sign up again. In cookie mode the refresh cookie is cleared.',
  })
  @ApiOkResponse({ type: SuccessResponse })
  async deleteMe(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: DeleteAccountDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<SuccessResponse> {
    await this.account.deleteAccount(user, sessionId, dto.password, ctx);
    this.refreshCookie.clear(response);
    return { message: AuthMessages.ACCOUNT_DELETED };
  }

  @Get('me/export')
  @BearerRoute({ unexpected: AuthErrors.EXPORT_FAILED })
  @Header('Content-Disposition', 'attachment; filename="account-export.json"')
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: "The account's data as a JSON attachment: profile, sessions, identities and own audit events",
    description: 'For data portability. Never a password hash, token or secret.',
  })
  @ApiOkResponse({ type: AccountExportResponse, headers: { 'Content-Disposition': { description: '`attachment; filename="account-export.json"`', schema: { type: 'string' } } } })
  async exportMe(@CurrentUser() user: User, @CurrentSessionId() sessionId: string): Promise<AccountExportResponse> {
    const data = await this.account.exportData(user);
    return {
      exported_at: new Date().toISOString(),
      profile: UserResponse.from(data.user),
      sessions: data.sessions.map((session) => SessionResponse.from(session, sessionId)),
      identities: data.identities.map((identity) => ({
        id: Number(identity.id),
        provider: identity.provider,
        email: identity.email,
        created_at: identity.createdAt.toISOString(),
      })),
      events: data.events.map((event) => ({
        id: Number(event.id),
        type: event.type,
        session_id: event.sessionId,
        ip: event.ip,
        user_agent: event.userAgent,
        created_at: event.createdAt.toISOString(),
        details: event.details,
      })),
    };
  }

  @Get('events')
  @BearerRoute({ unexpected: AuthErrors.EVENTS_FAILED, query: true })
  @ApiOperation({ summary: "The signed-in user's own audit events, newest first" })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE_SIZE, default: 50 } })
  @ApiQuery({ name: 'cursor', required: false, schema: { type: 'string', pattern: '^[1-9][0-9]{0,15}$' }, description: '`next_cursor` of the previous page' })
  @ApiOkResponse({ type: EventPageResponse })
  ownEvents(@CurrentUser() user: User, @ValidQuery() query: PageQueryDto): Promise<EventPageResponse> {
    return this.admin.ownEvents(user, query);
  }

  @Get('jwks')
  @PublicRoute({ problems: { 404: [AuthErrors.NO_PUBLIC_KEYS] } })
  @Header('Cache-Control', 'public, max-age=300')
  @ApiOperation({ summary: 'The public keys access tokens are signed with (JWKS); 404 when they are signed with HS256' })
  @ApiOkResponse({ type: JwksResponse })
  jwks(): JwksResponse {
    if (!this.signingKeys.publishesKeys) throw new NotFoundException(AuthErrors.NO_PUBLIC_KEYS);
    return this.signingKeys.jwks();
  }
}
