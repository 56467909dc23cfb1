import { ForbiddenException, Inject, Injectable, NotFoundException, UnauthorizedException } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { User } from '../users/user.entity';
import { ACCESS_TOKEN_TYPE, JWT_ALGORITHM } from './access-token.service';
import { AccessUserCache } from './access-user-cache';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { AuthErrors } from '../common/auth.errors';
import { isSessionId } from '../sessions/sessions.service';
import { AuthenticatedRequest, SESSION_ID_KEY } from './decorators';

/** Named so it cannot clash with a `jwt` strategy the host app registers for itself. */
export const AUTH_JWT_STRATEGY = 'auth-jwt';

const USER_ID = /^[1-9][0-9]{0,9}$/;
/** Ids are 32-bit integers; a larger `sub` would make PostgreSQL fail the lookup instead of finding nobody. */
const MAX_USER_ID = 2 ** 31 - 1;

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, AUTH_JWT_STRATEGY) {
  constructor(
    @Inject(AUTH_CONFIG) config: AuthConfig,
    private readonly users: AccessUserCache,
  ) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      // A KeyObject: jsonwebtoken re-imports a string secret on every verification, ~40x slower.
      secretOrKey: config.jwtKey as unknown as string,
      // The allow-list is what rejects `alg: none` and every algorithm but ours (RFC 8725 3.1).
      algorithms: [JWT_ALGORITHM],
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      ignoreExpiration: false,
      passReqToCallback: true,
    });
  }

  /** Runs after the signature, `exp`, `iss` and `aud` checked out. */
  async validate(request: AuthenticatedRequest, payload: Record<string, unknown>): Promise<User> {
    const { sub, typ, ver, sid, exp } = payload;
    const wellFormed =
      typ === ACCESS_TOKEN_TYPE &&
      typeof sub === 'string' &&
      USER_ID.test(sub) &&
      Number(sub) <= MAX_USER_ID &&
      Number.isInteger(ver) &&
      isSessionId(sid) &&
      // jsonwebtoken checks `exp` only when present; a token without one would never expire.
      typeof exp === 'number';
    if (!wellFormed) {
      throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
    }
    const found = await this.users.get(Number(sub), sid);
    if (!found) throw new NotFoundException(AuthErrors.USER_NOT_FOUND);
    const { user, sessionLive } = found;
    // A password change or reset bumped the version: this token predates it. Or its session has ended.
    if (user.tokenVersion !== ver || !sessionLive) throw new UnauthorizedException(AuthErrors.INVALID_ACCESS_TOKEN);
    if (!user.isActive) throw new ForbiddenException(AuthErrors.INACTIVE_USER);
    request[SESSION_ID_KEY] = sid;
    return user;
  }
}
