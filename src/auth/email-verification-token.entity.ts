import { Column, CreateDateColumn, Entity, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { User } from '../users/user.entity';

/** One outstanding email verification. Only the SHA-256 of the token is kept: a database leak reveals no usable link. */
@Entity('email_verification_tokens')
@Index('UQ_email_verification_tokens_token_hash', ['tokenHash'], { unique: true })
export class EmailVerificationToken {
  @PrimaryGeneratedColumn()
  id: number;

  @Index('IDX_email_verification_tokens_user_id')
  @Column({ name: 'user_id', type: 'integer' })
  userId: number;

  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  @Column({ name: 'token_hash', type: 'varchar', length: 64 })
  tokenHash: string;

  @Column({ name: 'expires_at', type: Date })
  expiresAt: Date;

  @Column({ name: 'used_at', type: Date, nullable: true })
  usedAt: Date | null;

  @CreateDateColumn({ name: 'created_at', type: Date })
  createdAt: Date;
}
