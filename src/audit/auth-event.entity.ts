import { Column, Index, PrimaryGeneratedColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';

/** What a detail of an event may hold: ids, names, reasons, counts. Never a secret. */
export type AuthEventDetails = Record<string, string | number | boolean | string[] | null>;

/**
 * One security-relevant change or attempt: written in the transaction of the change it records, so a
 * rolled-back change leaves none. Holds who (user, session), from where (client address after the
 * trusted-proxy rules, user agent) and what; never a password, token, code, link or hash.
 * No foreign key to users: the history outlives the account, for its retention.
 */
@AuthEntity('auth_events')
@Index('IDX_auth_events_user_id_id', ['userId', 'id'])
@Index('IDX_auth_events_type_id', ['type', 'id'])
@Index('IDX_auth_events_created_at', ['createdAt'])
export class AuthEvent {
  /** bigint: PostgreSQL's driver gives it as a decimal string (ids stay far below 2^53, so `Number()` is exact). */
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: string | number;

  @Column({ type: 'varchar', length: 40 })
  type: string;

  @Column({ name: 'user_id', type: 'integer', nullable: true })
  userId: number | null;

  @Column({ name: 'session_id', type: 'varchar', length: 36, nullable: true })
  sessionId: string | null;

  @Column({ type: 'varchar', length: 45, nullable: true })
  ip: string | null;

  @Column({ name: 'user_agent', type: 'varchar', length: 512, nullable: true })
  userAgent: string | null;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;

  @Column({ type: 'simple-json', nullable: true })
  details: AuthEventDetails | null;
}
