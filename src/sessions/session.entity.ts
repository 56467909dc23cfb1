import { Column, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { User } from '../users/user.entity';

/**
 * One signed-in device: born at sign-up or sign-in, kept alive by refreshes. It is also the family of
 * its refresh tokens: every token rotated from the first belongs to it, so a stolen token presented
 * again ends the session for the thief and the owner alike. Access tokens name it (`sid`), and the
 * access check refuses them once it is revoked.
 */
@AuthEntity('user_sessions')
@Index('IDX_user_sessions_user_id', ['userId'])
@Index('IDX_user_sessions_expires_at', ['expiresAt'])
export class Session {
  /** A random UUID: shown to its owner, never guessable from another session's id. */
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ name: 'user_id', type: 'integer' })
  userId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;

  /** The sign-in or the latest refresh. Guarded requests do not touch it: that would be a write per request. */
  @Column({ name: 'last_used_at', type: Date })
  lastUsedAt: Date;

  /** `REFRESH_TOKEN_EXPIRE_DAYS` after the last use: a session left alone that long ends by itself. */
  @Column({ name: 'expires_at', type: Date })
  expiresAt: Date;

  /** Authenticator assurance level (NIST SP 800-63B): `aal2` once a second factor was shown. Refresh keeps it. */
  @Column({ type: 'varchar', length: 8, default: 'aal1' })
  aal: 'aal1' | 'aal2';

  /** Authentication methods (RFC 8176), space-separated: `pwd`, or `pwd otp`. */
  @Column({ type: 'varchar', length: 32, default: 'pwd' })
  amr: string;

  /** Set by sign-out, a password change or reset, or a refresh token presented again too late. */
  @Column({ name: 'revoked_at', type: Date, nullable: true })
  revokedAt: Date | null;

  /** As sent at the last use, cut to 512 characters. */
  @Column({ name: 'user_agent', type: 'varchar', length: 512, nullable: true })
  userAgent: string | null;

  /** Client address at the last use (as `TRUST_PROXY` resolves it). */
  @Column({ type: 'varchar', length: 45, nullable: true })
  ip: string | null;
}
