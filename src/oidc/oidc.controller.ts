import { Controller, Delete, Get, HttpCode, HttpStatus, Param, Post, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { BearerJsonRoute, BearerRoute, PublicJsonRoute, PublicRoute } from '../auth/api-responses';
import { CurrentSessionId, CurrentUser, RequestContext, RequestCtx, RequireAal } from '../auth/decorators';
import { SuccessResponse, TokenResponse } from '../auth/dto/responses.dto';
import { RefreshTokenCookie } from '../auth/refresh-token-cookie';
import { ValidBody } from '../auth/validated-body';
import { ValidQuery } from '../auth/validated-query';
import { AuthErrors, AuthMessages } from '../common/auth.errors';
import { ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiResponse, ApiTags } from '../common/openapi';
import { ProblemDetailsFilter } from '../common/problem-details.filter';
import { AuthThrottlerGuard } from '../rate-limits/auth-throttler.guard';
import { User } from '../users/user.entity';
import { IdentitiesService } from './identities.service';
import { IdentityResponse, OidcExchangeDto, OidcLinkResponse, OidcStartDto } from './oidc.dto';
import { BrowserRedirect, OidcFlow } from './oidc-flow.service';
import { OidcExchange } from './oidc-exchange.service';

type HttpRequest = { url: string; headers: Record<string, string | string[] | undefined> };
type HttpResponse = Parameters<RefreshTokenCookie['deliver']>[0];

const PROVIDER_PARAM = { name: 'name', description: 'A provider of OIDC_PROVIDERS', example: 'google' };
const REDIRECT_HEADERS = {
  Location: { description: 'Where the browser goes next', schema: { type: 'string' } },
  'Set-Cookie': { description: '`oidc_binding`: HttpOnly, SameSite=Lax, binding the flow to this browser', schema: { type: 'string' } },
};

/** Sign-in with OpenID Connect providers, and the identities linked to an account (SPEC.md). */
@ApiTags('Authentication')
@Controller()
@UseGuards(AuthThrottlerGuard)
@UseFilters(ProblemDetailsFilter)
export class OidcController {
  constructor(
    private readonly flow: OidcFlow,
    private readonly exchanges: OidcExchange,
    private readonly identities: IdentitiesService,
    private readonly refreshCookie: RefreshTokenCookie,
  ) {}

  @Get('oidc/:name/authorize')
  @HttpCode(HttpStatus.FOUND)
  @PublicRoute({
    problems: { 400: [AuthErrors.REDIRECT_URL_NOT_ALLOWED], 404: [AuthErrors.UNKNOWN_PROVIDER], 503: [AuthErrors.PROVIDER_UNAVAILABLE] },
    unexpected: AuthErrors.OIDC_FAILED,
    query: true,
  })
  @ApiOperation({ summary: "Start signing in with a provider: 302 to the provider's authorization URL (PKCE S256, state, nonce)" })
  @ApiParam(PROVIDER_PARAM)
  @ApiQuery({ name: 'redirect_uri', required: true, schema: { type: 'string', maxLength: 2048 }, description: 'One of OIDC_REDIRECT_URLS, exactly' })
  @ApiQuery({ name: 'prompt', required: false, schema: { type: 'string' }, description: 'Passed through to the provider' })
  @ApiQuery({ name: 'login_hint', required: false, schema: { type: 'string', maxLength: 254 }, description: 'Passed through to the provider' })
  @ApiResponse({ status: 302, description: "To the provider's authorization URL", headers: REDIRECT_HEADERS })
  async authorize(@Param('name') name: string, @ValidQuery() query: OidcStartDto, @Res({ passthrough: true }) response: HttpResponse): Promise<void> {
    const redirect = await this.flow.authorize({ provider: name, redirectUri: query.redirect_uri, prompt: query.prompt, loginHint: query.login_hint });
    send(response, redirect);
  }

  @Get('oidc/:name/callback')
  @HttpCode(HttpStatus.FOUND)
  @PublicRoute({ problems: { 400: [AuthErrors.INVALID_OIDC_STATE], 404: [AuthErrors.UNKNOWN_PROVIDER] }, unexpected: AuthErrors.OIDC_FAILED })
  @ApiOperation({
    summary: 'Where the provider sends the browser back: 302 to the redirect_uri with `?code=` (or `?linked=`, or `?error=`)',
    description:
      '`error` is one of `invalid_state`, `provider_error`, `account_exists`, `email_not_verified`, `account_inactive`, `access_denied`. ' +
      'An existing account is never linked automatically: its owner signs in and uses `POST /oidc/{name}/link`.',
  })
  @ApiParam(PROVIDER_PARAM)
  @ApiResponse({ status: 302, description: 'Back to the client app', headers: REDIRECT_HEADERS })
  async callback(
    @Param('name') name: string,
    @Req() request: HttpRequest,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<void> {
    const separator = request.url.indexOf('?');
    const rawQuery = separator < 0 ? '' : request.url.slice(separator + 1);
    send(response, await this.flow.callback(name, rawQuery, request.headers.cookie, ctx));
  }

  @Post('oidc/exchange')
  @HttpCode(HttpStatus.OK)
  @PublicJsonRoute({
    problems: { 400: [AuthErrors.INVALID_EXCHANGE_CODE], 403: [AuthErrors.INACTIVE_USER, AuthErrors.MFA_REQUIRED] },
    unexpected: AuthErrors.SIGNIN_FAILED,
  })
  @ApiOperation({
    summary: 'Exchange the one-time code from the callback for tokens (as /signin answers: with TOTP on, a 403 with `mfa_token`)',
    description: 'Single use, 60 seconds, and only from the browser that went through the callback (its `oidc_binding` cookie).',
  })
  @ApiOkResponse({ type: TokenResponse })
  async exchange(
    @ValidBody() dto: OidcExchangeDto,
    @Req() request: HttpRequest,
    @RequestCtx() ctx: RequestContext,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<TokenResponse> {
    return this.refreshCookie.deliver(response, await this.exchanges.exchange(dto.code, request.headers.cookie, ctx));
  }

  @Post('oidc/:name/link')
  @HttpCode(HttpStatus.OK)
  @RequireAal('aal2')
  @BearerJsonRoute({
    problems: {
      400: [AuthErrors.REDIRECT_URL_NOT_ALLOWED],
      403: [AuthErrors.RECENT_SIGNIN_REQUIRED, AuthErrors.ADDITIONAL_AUTH_REQUIRED],
      404: [AuthErrors.UNKNOWN_PROVIDER],
      503: [AuthErrors.PROVIDER_UNAVAILABLE],
    },
    unexpected: AuthErrors.IDENTITIES_FAILED,
  })
  @ApiOperation({
    summary: 'Link a provider account to this one: the authorization URL to send the browser to; back at redirect_uri with `?linked=<name>`',
    description: 'Needs a sign-in no older than 5 minutes (and aal2 with TOTP). Sets the `oidc_binding` cookie as /authorize does.',
  })
  @ApiParam(PROVIDER_PARAM)
  @ApiOkResponse({ type: OidcLinkResponse })
  async link(
    @Param('name') name: string,
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @ValidBody() dto: OidcStartDto,
    @Res({ passthrough: true }) response: HttpResponse,
  ): Promise<OidcLinkResponse> {
    await this.identities.assertRecentSignIn(user, sessionId);
    const redirect = await this.flow.authorize({ provider: name, redirectUri: dto.redirect_uri, prompt: dto.prompt, loginHint: dto.login_hint, linkUserId: user.id });
    response.header('Set-Cookie', redirect.cookies as unknown as string);
    return { authorize_url: redirect.location };
  }

  @Get('identities')
  @BearerRoute({ unexpected: AuthErrors.IDENTITIES_FAILED })
  @ApiOperation({ summary: 'The provider accounts linked to this account' })
  @ApiOkResponse({ type: [IdentityResponse] })
  async listIdentities(@CurrentUser() user: User): Promise<IdentityResponse[]> {
    return (await this.identities.list(user)).map((identity) => IdentityResponse.from(identity));
  }

  @Delete('identities/:id')
  @BearerRoute({ problems: { 400: [AuthErrors.LAST_SIGNIN_METHOD], 404: [AuthErrors.IDENTITY_NOT_FOUND] }, unexpected: AuthErrors.IDENTITIES_FAILED })
  @ApiOperation({ summary: 'Unlink a provider account; refused when it is the last way to sign in (no password, no other identity)' })
  @ApiParam({ name: 'id', description: 'An id from GET /identities', example: '1' })
  @ApiOkResponse({ type: SuccessResponse })
  async unlinkIdentity(
    @CurrentUser() user: User,
    @CurrentSessionId() sessionId: string,
    @Param('id') id: string,
    @RequestCtx() ctx: RequestContext,
  ): Promise<SuccessResponse> {
    await this.identities.unlink(user, id, ctx, sessionId);
    return { message: AuthMessages.IDENTITY_UNLINKED };
  }
}

/** A 302 with an empty body (the status is the route's `@HttpCode`), the same on Express and Fastify. */
function send(response: HttpResponse, redirect: BrowserRedirect): void {
  // Both adapters send an array as one Set-Cookie header per cookie.
  response.header('Set-Cookie', redirect.cookies as unknown as string);
  response.header('Location', redirect.location);
  response.header('Cache-Control', 'no-store');
}
