import { IsOptional, IsString, Length, Matches, MaxLength } from 'class-validator';
import { ApiProperty, ApiPropertyOptional } from '../common/openapi';
import type { Identity } from './oidc.entities';

const PROMPT = /^(none|login|consent|select_account)( (none|login|consent|select_account))*$/;

/** `/authorize`'s query and `/link`'s body: where to come back to, and what to pass through to the provider. */
export class OidcStartDto {
  @ApiProperty({ example: 'https://app.example.com/auth/callback', description: 'One of OIDC_REDIRECT_URLS, exactly', maxLength: 2048 })
  @IsString()
  @MaxLength(2048)
  redirect_uri: string;

  @ApiPropertyOptional({ example: 'select_account', description: 'Passed through to the provider (`none`, `login`, `consent`, `select_account`)' })
  @IsOptional()
  @IsString()
  @Matches(PROMPT, { message: 'prompt must be none, login, consent or select_account (space-separated)' })
  prompt?: string;

  @ApiPropertyOptional({ example: 'ada@example.com', description: 'Passed through to the provider', maxLength: 254 })
  @IsOptional()
  @IsString()
  @MaxLength(254)
  login_hint?: string;
}

export class OidcExchangeDto {
  @ApiProperty({ example: 'Zk2Jd0yq3mD1i3Cq8sWw1yVh3a6kQm9f0v8yYt9b1nE', description: 'The `code` the browser came back with' })
  @IsString()
  @Length(1, 128)
  code: string;
}

export class OidcLinkResponse {
  @ApiProperty({ example: 'https://accounts.google.com/o/oauth2/v2/auth?client_id=…', description: "The provider's authorization URL: send the browser there" })
  authorize_url: string;
}

export class IdentityResponse {
  @ApiProperty({ example: 1, type: 'integer', description: 'Id for DELETE /identities/{id}' })
  id: number;

  @ApiProperty({ example: 'google', description: 'The configured provider name' })
  provider: string;

  @ApiProperty({ example: 'ada@gmail.com', nullable: true, type: String, description: "The provider's email when linked (display only)" })
  email: string | null;

  @ApiProperty({ example: '2026-11-25T14:51:26.000Z', format: 'date-time' })
  created_at: string;

  static from(identity: Identity): IdentityResponse {
    return { id: identity.id, provider: identity.provider, email: identity.email, created_at: identity.createdAt.toISOString() };
  }
}
