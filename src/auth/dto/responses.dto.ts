import { ApiProperty, ApiSchema } from '../../common/openapi';
import type { Session } from '../../sessions/session.entity';
import type { User } from '../../users/user.entity';

export class UserResponse {
  @ApiProperty({ example: 1, type: 'integer' })
  id: number;

  @ApiProperty({ example: 'ada@example.com' })
  email: string;

  @ApiProperty({ example: 'ada' })
  username: string;

  @ApiProperty({ example: 'Ada Lovelace', nullable: true, type: String })
  full_name: string | null;

  @ApiProperty({ example: true })
  is_active: boolean;

  @ApiProperty({ example: false, description: 'Whether the owner has confirmed the email address' })
  is_verified: boolean;

  @ApiProperty({ example: false, description: 'Whether sign-in asks for a TOTP code after the password' })
  mfa_enabled: boolean;

  @ApiProperty({ type: [String], example: [], description: 'Role names (`admin`, …)' })
  roles: string[];

  @ApiProperty({ example: true, description: 'False for an account created through an OpenID Connect provider until a password is set (forgot-password)' })
  has_password: boolean;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;

  /** The public view of a user: an explicit allow-list, so a new column never leaks by default. */
  static from(user: User): UserResponse {
    return {
      id: user.id,
      email: user.email,
      username: user.username,
      full_name: user.fullName,
      is_active: user.isActive,
      is_verified: user.isVerified,
      mfa_enabled: user.mfaEnabled,
      roles: user.roles,
      has_password: user.hasPassword,
      created_at: user.createdAt.toISOString(),
    };
  }
}

export class TokenResponse {
  @ApiProperty({ description: 'JWT access token (HS256, EdDSA or ES256, as configured; its `kid` names the key)' })
  access_token: string;

  @ApiProperty({ example: 'bearer', enum: ['bearer'] })
  token_type: 'bearer';

  @ApiProperty({ example: 1800, type: 'integer', description: 'Seconds until the access token expires' })
  expires_in: number;

  @ApiProperty({
    required: false,
    description:
      'Opaque refresh token for POST /refresh; single use (each refresh returns the next one). ' +
      'Absent when REFRESH_TOKEN_COOKIE is on: it travels in the HttpOnly `refresh_token` cookie instead',
  })
  refresh_token?: string;

  @ApiProperty({ example: 2592000, type: 'integer', description: 'Seconds the refresh token (and its session) stays valid unused' })
  refresh_expires_in: number;

  @ApiProperty({ type: UserResponse })
  user: UserResponse;
}

export class SessionResponse {
  @ApiProperty({ example: '8f14e45f-ceea-467f-a0e6-2b1e5c3a9d4b', description: 'Id for DELETE /sessions/{id}' })
  id: string;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time', description: 'Sign-in or sign-up time' })
  created_at: string;

  @ApiProperty({ example: '2026-11-25T15:21:26.000Z', format: 'date-time', description: 'Sign-in or latest refresh' })
  last_used_at: string;

  @ApiProperty({ example: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/142.0', nullable: true, type: String })
  user_agent: string | null;

  @ApiProperty({ example: '203.0.113.7', nullable: true, type: String, description: 'Client address at the last use' })
  ip: string | null;

  @ApiProperty({ example: true, description: 'Whether this is the session of the access token making the request' })
  current: boolean;

  static from(session: Session, currentSessionId: string | undefined): SessionResponse {
    return {
      id: session.id,
      created_at: session.createdAt.toISOString(),
      last_used_at: session.lastUsedAt.toISOString(),
      user_agent: session.userAgent,
      ip: session.ip,
      current: session.id === currentSessionId,
    };
  }
}

export class SuccessResponse {
  @ApiProperty({ example: 'Password changed successfully' })
  message: string;
}

export class FieldErrorResponse {
  @ApiProperty({ example: 'email' })
  field: string;

  @ApiProperty({ example: 'email must be a valid email address' })
  message: string;
}

/** Named after RFC 9457, so generated clients get a `ProblemDetails` type. */
@ApiSchema({ name: 'ProblemDetails', description: 'RFC 9457 problem details, sent as application/problem+json' })
export class ProblemResponse {
  @ApiProperty({ example: 'about:blank', description: 'Always `about:blank`: `status` and `detail` say what happened' })
  type: string;

  @ApiProperty({ example: 'Bad Request', description: 'The HTTP reason phrase of `status`' })
  title: string;

  @ApiProperty({ example: 400, type: 'integer', minimum: 400, maximum: 599 })
  status: number;

  @ApiProperty({ example: 'Email already registered', description: 'Stable text for each failure (SPEC.md lists them)' })
  detail: string;

  @ApiProperty({ type: [FieldErrorResponse], required: false, description: 'Present on 422 only' })
  errors?: FieldErrorResponse[];

  @ApiProperty({
    required: false,
    example: '3f0c5a52-63c4-4c4e-9a7e-6f6b1f7c2d10',
    description: 'Present on 5xx: quote it when reporting the problem',
  })
  request_id?: string;

  @ApiProperty({
    required: false,
    description: 'Present on 403 `Multi-factor authentication required`: send it with a code to `POST /signin/mfa` within 5 minutes',
  })
  mfa_token?: string;
}

export class PublicJwkResponse {
  @ApiProperty({ enum: ['OKP', 'EC'], description: '`OKP` for EdDSA (Ed25519), `EC` for ES256 (P-256)' })
  kty: string;

  @ApiProperty({ enum: ['Ed25519', 'P-256'] })
  crv: string;

  @ApiProperty({ description: 'Public key (base64url)' })
  x: string;

  @ApiProperty({ required: false, description: 'Second coordinate (base64url), ES256 only' })
  y?: string;

  @ApiProperty({ description: 'Key id (its RFC 7638 thumbprint), named in the header of each token it signs' })
  kid: string;

  @ApiProperty({ enum: ['EdDSA', 'ES256'] })
  alg: string;

  @ApiProperty({ enum: ['sig'] })
  use: 'sig';
}

@ApiSchema({ description: 'JSON Web Key Set (RFC 7517): every key a live token may name' })
export class JwksResponse {
  @ApiProperty({ type: [PublicJwkResponse] })
  keys: PublicJwkResponse[];
}

export class TotpSetupResponse {
  @ApiProperty({ description: 'The TOTP secret (base32), for typing into an authenticator app', example: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP' })
  secret: string;

  @ApiProperty({ description: 'The otpauth:// key URI the QR code holds', example: 'otpauth://totp/Auth%20Service:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Auth+Service&algorithm=SHA1&digits=6&period=30' })
  otpauth_url: string;

  @ApiProperty({ description: 'The key URI as a QR code, an SVG data URL an `<img src>` can show as is', example: 'data:image/svg+xml;base64,PHN2Zy...' })
  qr_code: string;
}

const RECOVERY_CODES_EXAMPLE = [
  'k7pm-3qzx-hw2d', 'a9rt-vn4c-e8jy', 'm2xq-6fbp-t3wk', 'c5dh-j8nr-q4za', 'w3ey-p7ks-b6mt',
  'r8gv-2zhc-n5xp', 'f4tq-w9md-k2jb', 'y6nc-h3rx-v7ep', 'd2kw-s5qa-g8hz', 'p9bj-t4ve-x3mc',
];

export class RecoveryCodesResponse {
  @ApiProperty({ type: [String], minItems: 10, maxItems: 10, description: 'Ten single-use codes, shown once: each signs in once in place of a TOTP code', example: RECOVERY_CODES_EXAMPLE })
  recovery_codes: string[];
}

/** An identity at an OpenID Connect provider, as the account export lists it. */
export class ExportedIdentityResponse {
  @ApiProperty({ example: 3, type: 'integer' })
  id: number;

  @ApiProperty({ example: 'google', description: 'The provider\'s configured name' })
  provider: string;

  @ApiProperty({ example: 'ada@gmail.com', type: String, nullable: true, description: 'The address the provider gave' })
  email: string | null;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;
}

/** An audit event of the account, as the export lists it (the shape of `GET /events` items). */
export class ExportedEventResponse {
  @ApiProperty({ example: 1042, type: 'integer' })
  id: number;

  @ApiProperty({ example: 'signin' })
  type: string;

  @ApiProperty({ example: '8f14e45f-ceea-467f-a0e6-2b1e5c3a9d4b', type: String, nullable: true })
  session_id: string | null;

  @ApiProperty({ example: '203.0.113.7', type: String, nullable: true })
  ip: string | null;

  @ApiProperty({ example: 'Mozilla/5.0 (X11; Linux x86_64) Firefox/142.0', type: String, nullable: true })
  user_agent: string | null;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;

  @ApiProperty({ type: 'object', additionalProperties: true, nullable: true, example: { amr: ['pwd'] } })
  details: Record<string, unknown> | null;
}

/** `GET /me/export`: the account's data (data portability); never a hash, token or secret. */
export class AccountExportResponse {
  @ApiProperty({ example: '2026-11-25T15:00:00.000Z', format: 'date-time' })
  exported_at: string;

  @ApiProperty({ type: UserResponse })
  profile: UserResponse;

  @ApiProperty({ type: [SessionResponse], description: 'Live sessions, most recently used first' })
  sessions: SessionResponse[];

  @ApiProperty({ type: [ExportedIdentityResponse], description: 'Sign-in identities at OpenID Connect providers' })
  identities: ExportedIdentityResponse[];

  @ApiProperty({ type: [ExportedEventResponse], description: 'Every audit event of the account still kept, oldest first' })
  events: ExportedEventResponse[];
}
