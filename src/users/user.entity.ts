import { Column, CreateDateColumn, Index, PrimaryGeneratedColumn, UpdateDateColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';

@AuthEntity('users')
@Index('UQ_users_email', ['email'], { unique: true })
@Index('UQ_users_username_canonical', ['usernameCanonical'], { unique: true })
export class User {
  @PrimaryGeneratedColumn()
  id: number;

  /** Trimmed and lower-cased before it is stored, so the unique index is case-insensitive. */
  @Column({ type: 'varchar', length: 254 })
  email: string;

  /** As the user typed it, for display. */
  @Column({ type: 'varchar', length: 50 })
  username: string;

  /** Lower-cased NFKC form of `username`; its unique index makes usernames unique regardless of case. */
  @Column({ name: 'username_canonical', type: 'varchar', length: 50 })
  usernameCanonical: string;

  @Column({ name: 'full_name', type: 'varchar', length: 100, nullable: true })
  fullName: string | null;

  /** Null for an account created through an OpenID Connect provider until a password is set (forgot-password). */
  @Column({ name: 'hashed_password', type: 'varchar', length: 255, nullable: true, select: false })
  hashedPassword: string | null;

  /** Whether `hashedPassword` is set, readable without selecting the hash. */
  @Column({ name: 'has_password', type: 'boolean', default: true })
  hasPassword: boolean;

  @Column({ name: 'is_active', type: 'boolean', default: true })
  isActive: boolean;

  /** Set once the owner followed a link mailed to `email` (verification or password reset). */
  @Column({ name: 'is_verified', type: 'boolean', default: false })
  isVerified: boolean;

  @Column({ name: 'verified_at', type: Date, nullable: true })
  verifiedAt: Date | null;

  /**
   * Written into every access token and bumped by a password change or reset: tokens carrying an older
   * value stop working at once, without relying on `iat`, which only has one-second granularity.
   */
  /** A confirmed TOTP factor: sign-in then needs a code, and sensitive routes an `aal2` token. */
  @Column({ name: 'mfa_enabled', type: 'boolean', default: false })
  mfaEnabled: boolean;

  /** Role names (`admin`, …), checked by `@Roles()` on every request and carried in access tokens. */
  @Column({ type: 'simple-array', default: '' })
  roles: string[];

  @Column({ name: 'token_version', type: 'integer', default: 0 })
  tokenVersion: number;

  @CreateDateColumn({ name: 'created_at', type: Date })
  createdAt: Date;

  @UpdateDateColumn({ name: 'updated_at', type: Date })
  updatedAt: Date;
}
