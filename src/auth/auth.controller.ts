import {
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpStatus,
  Param,
  Post,
  Req,
  Res,
  UseFilters,
  UseGuards,
  UseInterceptors,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiForbiddenResponse,
  ApiInternalServerErrorResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
  ApiUnprocessableEntityResponse,
} from '../common/openapi';
import { ProblemDetailsFilter } from '../common/problem-details.filter';
import { OnUnexpectedError, UnexpectedErrorInterceptor } from '../common/unexpected-error.interceptor';
import { User } from '../users/user.entity';
import { AuthThrottlerGuard } from '../rate-limits/auth-throttler.guard';
import { AuthErrors } from '../common/auth.errors';
import { AuthService } from './auth.service';
import { CurrentSessionId, CurrentUser, Public, RequestContext, RequestCtx } from './decorators';
import {
  ChangePasswordDto,
  ForgotPasswordDto,
  RefreshTokenDto,
  ResendVerificationDto,
  ResetPasswordDto,
  SignInDto,
  SignUpDto,
  VerifyEmailDto,
} from './dto/requests.dto';
import { ProblemResponse, SessionResponse, SuccessResponse, TokenResponse, UserResponse } from './dto/responses.dto';
import { JwtAuthGuard } from './jwt-auth.guard';
import { RefreshTokenCookie } from './refresh-token-cookie';
import { ValidBody } from './validated-body';

/** What the routes need of Express's and Fastify's request and response objects. */
type HttpRequest = Parameters<RefreshTokenCookie['read']>[0];
type HttpResponse = Parameters<RefreshTokenCookie['deliver']>[0];

const problem = { type: ProblemResponse, description: 'application/problem+json' } as const;

@ApiTags('Authentication')
@ApiExtraModels(ProblemResponse)
@ApiUnprocessableEntityResponse({ ...problem, description: 'The body is invalid; `errors` lists each field' })
@ApiTooManyRequestsResponse({ ...problem, description: 'Rate limited; see `Retry-After`' })
@Controller()
@UseGuards(AuthThrottlerGuard)
@UseFilters(ProblemDetailsFilter)
@UseInterceptors(UnexpectedErrorInterceptor)
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly refreshCookie: RefreshTokenCookie,
  ) {}

  @Post('signup')
  @Public()
  @OnUnexpectedError(AuthErrors.SIGNUP_FAILED)
  @ApiOperation({ summary: 'Create an account and sign in; sends a welcome email with a verification link' })
  @ApiCreatedResponse({ type: TokenResponse })
  @ApiBadRequestResponse({ ...problem, description: 'Email already registered / Username already taken' })
  @ApiInternalServerErrorResponse(problem)
  async signUp(
    @ValidBody() dto: SignUpDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.auth.signUp(dto, ctx));
  }

  @Post('signin')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.SIGNIN_FAILED)
  @ApiOperation({ summary: 'Exchange email and password for an access token' })
  @ApiOkResponse({ type: TokenResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Invalid email or password' })
  @ApiForbiddenResponse({
    ...problem,
    description: 'User account is inactive / Email not verified (when verification is required)',
  })
  @ApiInternalServerErrorResponse(problem)
  async signIn(
    @ValidBody() dto: SignInDto,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.auth.signIn(dto, ctx));
  }

  @Post('refresh')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.REFRESH_FAILED)
  @ApiOperation({
    summary: 'Exchange a refresh token for a new access token and a new refresh token',
    description:
      'The presented refresh token is spent. Presented again within REFRESH_TOKEN_REUSE_GRACE_SECONDS it gets the ' +
      'same successor (parallel tabs); later, the whole session is revoked. In cookie mode the token is read ' +
      'from the `refresh_token` cookie and the new one is set there.',
  })
  @ApiOkResponse({ type: TokenResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Invalid or expired refresh token' })
  @ApiForbiddenResponse({ ...problem, description: 'User account is inactive / Email not verified' })
  @ApiInternalServerErrorResponse(problem)
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
  @UseGuards(JwtAuthGuard)
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.SIGNOUT_FAILED)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'End the current session: its access and refresh tokens stop working at once' })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiInternalServerErrorResponse(problem)
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
  @UseGuards(JwtAuthGuard)
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.SIGNOUT_FAILED)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'End every session of the user, this one included' })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiInternalServerErrorResponse(problem)
  signOutEverywhere(
    @CurrentUser() user: User,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<SuccessResponse> {
    this.refreshCookie.clear(response);
    return this.auth.signOutEverywhere(user, ctx);
  }

  @Get('sessions')
  @UseGuards(JwtAuthGuard)
  @OnUnexpectedError(AuthErrors.SESSIONS_FAILED)
  @ApiBearerAuth()
  @ApiOperation({ summary: "The user's live sessions, most recently used first; `current` marks this one" })
  @ApiOkResponse({ type: [SessionResponse] })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiInternalServerErrorResponse(problem)
  listSessions(@CurrentUser() user: User, @CurrentSessionId() sessionId: string): Promise<SessionResponse[]> {
    return this.auth.listSessions(user, sessionId);
  }

  @Delete('sessions/:id')
  @UseGuards(JwtAuthGuard)
  @OnUnexpectedError(AuthErrors.SESSIONS_FAILED)
  @ApiBearerAuth()
  @ApiOperation({ summary: "End one of the user's sessions (sign a lost device out)" })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiNotFoundResponse({ ...problem, description: 'Session not found (also for another user\'s session)' })
  @ApiInternalServerErrorResponse(problem)
  endSession(
    @CurrentUser() user: User,
    @Param('id') sessionId: string,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    return this.auth.endSession(user, sessionId, ctx);
  }

  @Post('forgot-password')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.FORGOT_PASSWORD_FAILED)
  @ApiOperation({ summary: 'Email a reset link; answers the same whether or not the email has an account' })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiInternalServerErrorResponse(problem)
  forgotPassword(@ValidBody() dto: ForgotPasswordDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.forgotPassword(dto, ctx);
  }

  @Post('reset-password')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.RESET_PASSWORD_FAILED)
  @ApiOperation({
    summary: 'Set a new password with the token from the reset email; ends every session and mails a notice',
  })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiBadRequestResponse({ ...problem, description: 'Invalid or expired token' })
  @ApiNotFoundResponse({ ...problem, description: 'User not found' })
  @ApiInternalServerErrorResponse(problem)
  resetPassword(@ValidBody() dto: ResetPasswordDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.resetPassword(dto, ctx);
  }

  @Post('verify-email')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.VERIFY_EMAIL_FAILED)
  @ApiOperation({ summary: 'Confirm the email address with the token from the verification link' })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiBadRequestResponse({ ...problem, description: 'Invalid or expired token' })
  @ApiInternalServerErrorResponse(problem)
  verifyEmail(@ValidBody() dto: VerifyEmailDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.verifyEmail(dto, ctx);
  }

  @Post('resend-verification')
  @Public()
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.RESEND_VERIFICATION_FAILED)
  @ApiOperation({
    summary: 'Email a new verification link; answers the same whether or not the email has an unverified account',
  })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiInternalServerErrorResponse(problem)
  resendVerification(@ValidBody() dto: ResendVerificationDto, @RequestCtx() ctx: RequestContext): Promise<SuccessResponse> {
    return this.auth.resendVerification(dto, ctx);
  }

  @Post('change-password')
  @UseGuards(JwtAuthGuard)
  @HttpCode(HttpStatus.OK)
  @OnUnexpectedError(AuthErrors.CHANGE_PASSWORD_FAILED)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'Change the password; ends every session, including this one, and mails a notice' })
  @ApiOkResponse({ type: SuccessResponse })
  @ApiBadRequestResponse({ ...problem, description: 'Incorrect current password' })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiForbiddenResponse({ ...problem, description: 'User account is inactive' })
  @ApiNotFoundResponse({ ...problem, description: 'User not found' })
  @ApiInternalServerErrorResponse(problem)
  changePassword(
    @CurrentUser() user: User,
    @ValidBody() dto: ChangePasswordDto,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    return this.auth.changePassword(user, dto, ctx);
  }

  @Get('me')
  @UseGuards(JwtAuthGuard)
  @ApiBearerAuth()
  @ApiOperation({ summary: 'The signed-in user' })
  @ApiOkResponse({ type: UserResponse })
  @ApiUnauthorizedResponse({ ...problem, description: 'Missing, invalid or expired token' })
  @ApiForbiddenResponse({ ...problem, description: 'User account is inactive' })
  @ApiNotFoundResponse({ ...problem, description: 'User not found' })
  me(@CurrentUser() user: User): UserResponse {
    return UserResponse.from(user);
  }
}
