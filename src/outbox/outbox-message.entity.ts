import { Column, Index, JoinColumn, ManyToOne, PrimaryGeneratedColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { User } from '../users/user.entity';

/**
 * What a message is for. The content is rendered only when it is sent: a token is minted then, so no
 * usable link ever rests in the database, and a link mailed after an SMTP outage is still fresh.
 */
export type OutboxMessageKind =
  | 'welcome'
  | 'email-verification'
  | 'password-reset'
  | 'password-changed'
  | 'mfa-enabled'
  | 'mfa-disabled'
  | 'recovery-code-used'
  | 'identity-linked'
  /** The link to confirm an email change, to the new address. */
  | 'email-change-confirmation'
  /** To the old address: a change to another one was asked for. */
  | 'email-change-requested'
  /** To the owner of an address someone tried to move another account to. */
  | 'email-change-address-taken'
  /** The goodbye after a deletion: it belongs to no account any more, and is deleted once sent or dead. */
  | 'account-deleted';

/** `pending` until sent; `dead` after the last failed attempt, kept for inspection. */
export type OutboxMessageStatus = 'pending' | 'sent' | 'dead';

/** One email to send, written in the same transaction as the change that causes it. */
@AuthEntity('mail_outbox')
@Index('IDX_mail_outbox_due', ['status', 'nextAttemptAt'])
@Index('IDX_mail_outbox_user_kind_created', ['userId', 'kind', 'createdAt'])
export class OutboxMessage {
  @PrimaryGeneratedColumn()
  id: number;

  @Column({ type: 'varchar', length: 32 })
  kind: OutboxMessageKind;

  /** Null for a message whose account is gone (the goodbye after a deletion). */
  @Column({ name: 'user_id', type: 'integer', nullable: true })
  userId: number | null;

  /** Messages go with their account when it is deleted. */
  @ManyToOne(() => User, { onDelete: 'CASCADE' })
  @JoinColumn({ name: 'user_id' })
  user?: User;

  /** The account's address when the message was written. */
  @Column({ type: 'varchar', length: 254 })
  recipient: string;

  @Column({ type: 'varchar', length: 16, default: 'pending' })
  status: OutboxMessageStatus;

  /** Attempts started so far; counted when a worker claims the message, so a crash mid-send counts too. */
  @Column({ type: 'integer', default: 0 })
  attempts: number;

  @Column({ name: 'next_attempt_at', type: Date })
  nextAttemptAt: Date;

  /** While in the future, a worker is sending the message and no other may claim it. */
  @Column({ name: 'locked_until', type: Date, nullable: true })
  lockedUntil: Date | null;

  /** Why the latest attempt failed (the transport's message, never the content). */
  @Column({ name: 'last_error', type: 'varchar', length: 500, nullable: true })
  lastError: string | null;

  /** Set from the module's clock, which the per-account mail caps count against. */
  @Column({ name: 'created_at', type: Date })
  createdAt: Date;

  @Column({ name: 'sent_at', type: Date, nullable: true })
  sentAt: Date | null;
}
