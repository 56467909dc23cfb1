import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';

/** `typ` claim of access tokens: no other token this service issues can stand in for one (RFC 8725 3.11). */
export const ACCESS_TOKEN_TYPE = 'access';
export const JWT_ALGORITHM = 'HS256';

/** Claims of an access token beyond the registered ones (`iss`, `aud`, `iat`, `exp`). */
export interface AccessTokenClaims {
  /** The user's id as a decimal string. */
  sub: string;
  typ: typeof ACCESS_TOKEN_TYPE;
  /** The user's token version when the token was issued; see `User.tokenVersion`. */
  ver: number;
  /** The session the token belongs to: it stops working when the session ends. */
  sid: string;
}

export interface IssuedAccessToken {
  token: string;
  expiresInSeconds: number;
}

@Injectable()
export class AccessTokenService {
  constructor(
    private readonly jwt: JwtService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  issue(user: { id: number; tokenVersion: number }, sessionId: string): IssuedAccessToken {
    const claims: AccessTokenClaims & { iat: number } = {
      sub: String(user.id),
      typ: ACCESS_TOKEN_TYPE,
      ver: user.tokenVersion,
      sid: sessionId,
      iat: Math.floor(this.config.clock().getTime() / 1000),
    };
    const token = this.jwt.sign(claims, {
      algorithm: JWT_ALGORITHM,
      expiresIn: this.config.accessTokenTtlSeconds,
      issuer: this.config.jwtIssuer,
      audience: this.config.jwtAudience,
    });
    return { token, expiresInSeconds: this.config.accessTokenTtlSeconds };
  }
}
