import { Column, CreateDateColumn, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { OneTimeToken } from '../one-time-tokens/one-time-token.entity';
import { AuthEntity } from '../options/table-prefix';
import { User } from '../users/user.entity';

/**
 * An account at an OpenID Connect provider linked to a user. Keyed by `(issuer, subject)`: the subject is
 * the provider's stable id for the account, while an email at a provider can change hands.
 */
@AuthEntity('identities')
@Index('UQ_identities_issuer_subject', ['issuer', 'subject'], { unique: true })
@Index('IDX_identities_user_id', ['userId'])
export class Identity {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'user_id', type: 'integer' })
  userId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  @Column({ type: 'varchar', length: 255 })
  issuer: string;

  @Column({ type: 'varchar', length: 255 })
  subject: string;

  /** The configured provider name, for display only. */
  @Column({ type: 'varchar', length: 32 })
  provider: string;

  /** The provider's email claim when linked, for display only: it never decides who signs in. */
  @Column({ type: 'varchar', length: 254, nullable: true })
  email: string | null;

  @CreateDateColumn({ name: 'created_at', type: Date })
  createdAt: Date;
}

/**
 * One authorization request in flight: its `state` (stored as a SHA-256), bound to the browser that
 * started it by the hash of a cookie, with the nonce and PKCE verifier the callback needs. Kept in the
 * database so that any instance can serve the callback.
 */
@AuthEntity('oidc_states')
@Index('UQ_oidc_states_state_hash', ['stateHash'], { unique: true })
@Index('IDX_oidc_states_expires_at', ['expiresAt'])
export class OidcState {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'state_hash', type: 'varchar', length: 64 })
  stateHash: string;

  @Column({ name: 'browser_hash', type: 'varchar', length: 64 })
  browserHash: string;

  @Column({ type: 'varchar', length: 32 })
  provider: string;

  @Column({ name: 'redirect_uri', type: 'varchar', length: 2048 })
  redirectUri: string;

  @Column({ type: 'varchar', length: 64 })
  nonce: string;

  @Column({ name: 'code_verifier', type: 'varchar', length: 128 })
  codeVerifier: string;

  /** Set when a signed-in user is linking an identity to their account, rather than signing in. */
  @Column({ name: 'link_user_id', type: 'integer', nullable: true })
  linkUserId: number | null;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'link_user_id' })
  linkUser?: User;

  @Column({ name: 'expires_at', type: Date })
  expiresAt: Date;

  @Column({ name: 'used_at', type: Date, nullable: true })
  usedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: Date })
  createdAt: Date;
}

/** The one-time code the browser brings back to the client app, exchanged once for tokens at `/oidc/exchange`. */
@AuthEntity('oidc_exchange_codes')
@Index('UQ_oidc_exchange_codes_token_hash', ['tokenHash'], { unique: true })
@Index('IDX_oidc_exchange_codes_user_id', ['userId'])
export class OidcExchangeCode extends OneTimeToken {
  /** The same browser cookie as the state's: a code copied to another browser is refused. */
  @Column({ name: 'browser_hash', type: 'varchar', length: 64 })
  browserHash: string;
}
