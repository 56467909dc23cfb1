import { Column, Index, JoinColumn, ManyToOne, PrimaryColumn, PrimaryGeneratedColumn } from 'typeorm';
import { OneTimeToken } from '../one-time-tokens/one-time-token.entity';
import { AuthEntity } from '../options/table-prefix';
import { User } from '../users/user.entity';

/** A user's TOTP secret: pending from setup until a first code confirms it. */
@AuthEntity('totp_factors')
export class TotpFactor {
  @PrimaryColumn({ name: 'user_id', type: 'integer' })
  userId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  /** The base32 secret, encrypted (SecretBox, bound to the user id). */
  @Column({ type: 'text' })
  secret: string;

  @Column({ name: 'confirmed_at', type: Date, nullable: true })
  confirmedAt: Date | null;

  /** The time step of the last code accepted: a code of that step or an earlier one is refused. */
  @Column({ name: 'last_used_step', type: 'integer', nullable: true })
  lastUsedStep: number | null;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;
}

/** One single-use recovery code, stored as an HMAC (the codes carry 60 random bits each). */
@AuthEntity('recovery_codes')
@Index('IDX_recovery_codes_user_id', ['userId'])
export class RecoveryCode {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ name: 'user_id', type: 'integer' })
  userId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  @Column({ name: 'code_hash', type: 'varchar', length: 64 })
  codeHash: string;

  @Column({ name: 'used_at', type: Date, nullable: true })
  usedAt: Date | null;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;
}

/**
 * The `mfa_token` of a sign-in waiting for its second factor: single use, five minutes, one account.
 * Unlike a mailed token, a newer one does not void the older: two devices may be signing in at once.
 */
@AuthEntity('mfa_challenges')
@Index('UQ_mfa_challenges_token_hash', ['tokenHash'], { unique: true })
@Index('IDX_mfa_challenges_user_id', ['userId'])
export class MfaChallenge extends OneTimeToken {
  /** The user's token version when the password was checked: a password change in between voids it. */
  @Column({ name: 'token_version', type: 'integer' })
  tokenVersion: number;

  /** How the first half signed in: a password, or an OpenID Connect provider. */
  @Column({ name: 'first_factor', type: 'varchar', length: 8, default: 'pwd' })
  firstFactor: 'pwd' | 'oidc';
}
