import { Column, Index } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';
import { OneTimeToken } from './one-time-token.entity';

/**
 * One pending email change: the link mailed to `newEmail` carries its token. Written when the change is
 * asked for with the hash of a token no one holds, so it works for nothing until the mail is sent
 * and `EmailChangeTokensService.mint` gives it the real one.
 */
@AuthEntity('email_change_tokens')
@Index('UQ_email_change_tokens_token_hash', ['tokenHash'], { unique: true })
@Index('IDX_email_change_tokens_user_id', ['userId'])
export class EmailChangeToken extends OneTimeToken {
  /** The address the account moves to, in its stored (canonical) form. */
  @Column({ name: 'new_email', type: 'varchar', length: 254 })
  newEmail: string;

  /** The session that asked: it stays signed in when the change is confirmed, every other one ends. */
  @Column({ name: 'session_id', type: 'varchar', length: 36, nullable: true })
  sessionId: string | null;
}
