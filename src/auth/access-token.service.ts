import { Inject, Injectable } from '@nestjs/common';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { decodeJws, signJws, verifyJwsSignature } from '../signing-keys/compact-jws';
import { SigningKeys } from '../signing-keys/signing-keys.service';
import type { StartedSession } from '../sessions/sessions.service';
import type { User } from '../users/user.entity';
import { type TokenResponse, UserResponse } from './dto/responses.dto';

/** `typ` claim of access tokens: no other token this service issues can stand in for one (RFC 8725 3.11). */
export const ACCESS_TOKEN_TYPE = 'access';

/** Claims of an access token beyond the registered ones (`iss`, `aud`, `iat`, `exp`). */
export interface AccessTokenClaims {
  /** The user's id as a decimal string. */
  sub: string;
  typ: typeof ACCESS_TOKEN_TYPE;
  /** The user's token version when the token was issued; see `User.tokenVersion`. */
  ver: number;
  /** The session the token belongs to: it stops working when the session ends. */
  sid: string;
  /** Assurance level of the session: `aal2` once a second factor was shown. */
  aal: 'aal1' | 'aal2';
  /** How the session was signed in (RFC 8176): `["pwd"]` or `["pwd", "otp"]`. */
  amr: string[];
  /** The user's roles when the token was issued, for services that read the token; this service checks the stored ones. */
  roles: string[];
}

export interface IssuedAccessToken {
  token: string;
  expiresInSeconds: number;
}

/** Tokens checked are remembered (bounded): one Ed25519 or P-256 check costs ~100 µs, HS256 and the decoding ~15 µs. */
const VERIFIED_CACHE_MAX = 10_000;

interface Verified {
  payload: Record<string, unknown>;
  /** Always set with published keys; a token from before tokens named their key has none (HS256). */
  kid: string | undefined;
}

/** Issues access tokens and checks the ones presented: signature, algorithm, key, `iss`, `aud`, `exp`. */
@Injectable()
export class AccessTokenService {
  /**
   * Tokens whose signature checked out, by the whole token: a client sends the same token many times,
   * and an asymmetric check would otherwise halve the guarded route's throughput (BENCHMARKS.md,
   * "Signing keys"); with HS256 the HMAC and the JSON decoding were a tenth of `GET /me`. Whether the
   * key is still published, and the claims (`exp` above all), are checked on every request.
   */
  private readonly verified = new Map<string, Verified>();

  constructor(
    private readonly keys: SigningKeys,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  issue(user: { id: number; tokenVersion: number; roles: string[] }, session: { sessionId: string } & Pick<AccessTokenClaims, 'aal' | 'amr'>): IssuedAccessToken {
    const iat = Math.floor(this.config.clock().getTime() / 1000);
    const claims = {
      sub: String(user.id),
      typ: ACCESS_TOKEN_TYPE,
      ver: user.tokenVersion,
      sid: session.sessionId,
      aal: session.aal,
      amr: session.amr,
      roles: user.roles,
      iat,
      exp: iat + this.config.accessTokenTtlSeconds,
      aud: this.config.jwtAudience,
      iss: this.config.jwtIssuer,
    };
    const { kid, algorithm, key } = this.keys.current();
    return { token: signJws(claims, algorithm, kid, key), expiresInSeconds: this.config.accessTokenTtlSeconds };
  }

  /** What every sign-in answers (password, second factor, provider) and refresh: tokens and the user. */
  tokenResponse(user: User, session: StartedSession): TokenResponse {
    const { token, expiresInSeconds } = this.issue(user, session);
    return {
      access_token: token,
      token_type: 'bearer',
      expires_in: expiresInSeconds,
      refresh_token: session.refreshToken,
      refresh_expires_in: this.config.refreshTokenTtlSeconds,
      user: UserResponse.from(user),
    };
  }

  /**
   * The claims of a token this service signed and that is still valid, or null. The algorithm is the
   * configured one, never the token's choice (RFC 8725 3.1: no `none`, no HS256 made with a public key),
   * and the key is the one its `kid` names, unless revoked or retired past its tokens' lifetime.
   */
  async verify(token: string): Promise<Record<string, unknown> | null> {
    const payload = await this.signedPayload(token);
    if (!payload) return null;
    const { exp, nbf, iss, aud } = payload;
    const now = Date.now() / 1000;
    // Without `exp` a token would never expire.
    if (typeof exp !== 'number' || exp <= now) return null;
    if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now)) return null;
    if (iss !== this.config.jwtIssuer) return null;
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(this.config.jwtAudience)) return null;
    return payload;
  }

  private async signedPayload(token: string): Promise<Record<string, unknown> | null> {
    const cached = this.verified.get(token);
    // A published key can be revoked or retire; the HS256 secret stays what it was at start-up.
    if (cached) return !this.keys.publishesKeys || this.keys.isPublished(cached.kid!) ? cached.payload : null;
    const jws = decodeJws(token);
    if (!jws) return null;
    const key = await this.keys.verificationKey(jws.header.kid, jws.header.alg);
    if (!key || !verifyJwsSignature(this.config.jwtAlgorithm, key, jws.signingInput, jws.signature)) return null;
    if (!this.keys.publishesKeys || jws.header.kid !== undefined) {
      if (this.verified.size >= VERIFIED_CACHE_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { payload: jws.payload, kid: jws.header.kid });
    }
    return jws.payload;
  }
}
