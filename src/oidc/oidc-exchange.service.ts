import { BadRequestException, ForbiddenException, Inject, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, MoreThan, Repository } from 'typeorm';
import { AccessTokenService } from '../auth/access-token.service';
import type { RequestContext } from '../auth/decorators';
import { TokenResponse } from '../auth/dto/responses.dto';
import { AuditService } from '../audit/audit.service';
import { AuthErrors } from '../common/auth.errors';
import { MfaRequiredException } from '../common/exceptions';
import { sha256Hex } from '../common/opaque-tokens';
import { TransactionRunner } from '../common/transaction-runner';
import { MfaService } from '../mfa/mfa.service';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { OIDC_ONLY, SessionsService } from '../sessions/sessions.service';
import { UsersService } from '../users/users.service';
import { OidcCookies } from './oidc-cookies';
import { OidcExchangeCode } from './oidc.entities';
import { sameHash } from './oidc-flow.service';

/** The last step of a sign-in through a provider: the one-time code from the callback for a session. */
@Injectable()
export class OidcExchange {
  private readonly logger = new Logger('OidcExchange');

  constructor(
    private readonly cookies: OidcCookies,
    private readonly users: UsersService,
    private readonly sessions: SessionsService,
    private readonly accessTokens: AccessTokenService,
    private readonly mfa: MfaService,
    private readonly transactions: TransactionRunner,
    private readonly auditLog: AuditService,
    @InjectRepository(OidcExchangeCode) private readonly codes: Repository<OidcExchangeCode>,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  /** `POST /oidc/exchange`: the one-time code for tokens, once, in the browser that got it. */
  async exchange(code: string, cookieHeader: string | string[] | undefined, ctx: RequestContext): Promise<TokenResponse> {
    const binding = this.cookies.read(cookieHeader);
    const now = this.config.clock();
    const row = await this.codes.findOneBy({ tokenHash: sha256Hex(code), usedAt: IsNull(), expiresAt: MoreThan(now) });
    if (!row || !binding || !sameHash(sha256Hex(binding), row.browserHash)) throw new BadRequestException(AuthErrors.INVALID_EXCHANGE_CODE);
    const claim = await this.codes.update({ id: row.id, usedAt: IsNull() }, { usedAt: now });
    if (claim.affected !== 1) throw new BadRequestException(AuthErrors.INVALID_EXCHANGE_CODE);
    const user = await this.users.findById(row.userId);
    if (!user) throw new BadRequestException(AuthErrors.INVALID_EXCHANGE_CODE);
    if (!user.isActive) throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    if (user.mfaEnabled) {
      const mfaToken = await this.transactions.run((manager) => this.mfa.issueChallenge(manager, user, 'oidc'));
      this.audit('oidc_signin_mfa_required', user.id, ctx);
      throw new MfaRequiredException(AuthErrors.MFA_REQUIRED, mfaToken);
    }
    const client = { userAgent: ctx.userAgent, ip: ctx.ip };
    const session = await this.transactions.run(async (manager) => {
      const started = await this.sessions.start(manager, user.id, client, OIDC_ONLY);
      await this.auditLog.record(manager, { type: 'oidc_signin', userId: user.id, sessionId: started.sessionId, client, details: { amr: started.amr } });
      return started;
    });
    this.audit('oidc_signed_in', user.id, ctx);
    return this.accessTokens.tokenResponse(user, session);
  }

  private audit(event: string, userId: number, ctx: RequestContext): void {
    this.logger.log(`event=${event} user_id=${userId} request_id=${ctx.requestId} ip=${ctx.ip}`);
  }
}
