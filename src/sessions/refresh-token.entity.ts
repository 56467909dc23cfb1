import { Column, Index, JoinColumn, ManyToOne, PrimaryColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { Session } from './session.entity';

/**
 * Every refresh token a session was given, kept after it is spent so that presenting it again is
 * recognised as reuse. Only the SHA-256 of the token is stored.
 */
@AuthEntity('refresh_tokens')
@Index('IDX_refresh_tokens_session_id', ['sessionId'])
export class RefreshToken {
  @PrimaryColumn({ name: 'token_hash', type: 'varchar', length: 64 })
  tokenHash: string;

  @Column({ name: 'session_id', type: 'varchar', length: 36 })
  sessionId: string;

  @ManyToOne(() => Session, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'session_id' })
  session?: Session;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;

  /** When it was exchanged for its successor; null while it is the session's current token. */
  @Column({ name: 'spent_at', type: Date, nullable: true })
  spentAt: Date | null;
}
