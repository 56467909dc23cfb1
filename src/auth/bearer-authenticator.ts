import { ForbiddenException, Injectable, NotFoundException, UnauthorizedException } from '@nestjs/common';
import { User } from '../users/user.entity';
import { AuthErrors } from '../common/auth.errors';
import { ACCESS_TOKEN_TYPE, AccessTokenService } from './access-token.service';
import { AccessUserCache } from './access-user-cache';
import { AuditService } from '../audit/audit.service';
import { isSessionId } from '../sessions/sessions.service';
import { AAL_KEY, AuthenticatedRequest, SESSION_ID_KEY } from './decorators';

const USER_ID = /^[1-9][0-9]{0,9}$/;
/** Ids are 32-bit integers; a larger `sub` would make PostgreSQL fail the lookup instead of finding nobody. */
const MAX_USER_ID = 2 ** 31 - 1;
/** `Authorization: <scheme> <credentials>`; only the `Bearer` scheme (case-insensitive, RFC 6750 2.1) carries a token. */
const AUTHORIZATION = /^\s*(\S+)\s+(\S+)\s*$/;

type HttpRequest = AuthenticatedRequest & { headers: Record<string, string | string[] | undefined>; user?: User };

/** What `JwtAuthGuard` does with a request: the bearer token, its claims, its user and session. */
@Injectable()
export class BearerAuthenticator {
  constructor(
    private readonly tokens: AccessTokenService,
    private readonly users: AccessUserCache,
    private readonly auditLog: AuditService,
  ) {}

  /** Puts the user on `request.user` and the session id beside it, or throws the contract's 401/403/404. */
  async authenticate(request: HttpRequest): Promise<User> {
    const header = request.headers.authorization;
    const [, scheme, token] = (typeof header === 'string' && AUTHORIZATION.exec(header)) || [];
    if (scheme?.toLowerCase() !== 'bearer') throw new UnauthorizedException(AuthErrors.NOT_AUTHENTICATED);
    const claims = await this.tokens.verify(token);
    if (!claims) throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
    const { sub, typ, ver, sid } = claims;
    const wellFormed =
      typ === ACCESS_TOKEN_TYPE &&
      typeof sub === 'string' &&
      USER_ID.test(sub) &&
      Number(sub) <= MAX_USER_ID &&
      Number.isInteger(ver) &&
      isSessionId(sid);
    if (!wellFormed) throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
    const found = await this.users.get(Number(sub), sid);
    if (!found) {
      // A deleted account's sessions went with it: its tokens are those of ended sessions (401), so a
      // client signs out rather than reading a 404 as a passing fault. Only an id that never had an
      // account (or one deleted longer ago than the audit retention) is the seed's 404.
      if (await this.auditLog.wasDeleted(Number(sub))) throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
      throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    }
    const { user, sessionLive } = found;
    // A password change or reset bumped the version: this token predates it. Or its session has ended.
    if (user.tokenVersion !== ver || !sessionLive) throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
    if (!user.isActive) throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    request[SESSION_ID_KEY] = sid;
    // Tokens from before assurance levels carry none: they were password-only.
    request[AAL_KEY] = claims.aal === 'aal2' ? 'aal2' : 'aal1';
    request.user = user;
    return user;
  }
}
