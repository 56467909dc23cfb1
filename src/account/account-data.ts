import type { EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';
import { MfaChallenge, RecoveryCode, TotpFactor } from '../mfa/mfa.entities';
import { EmailChangeToken } from '../one-time-tokens/email-change-token.entity';
import { EmailVerificationToken } from '../one-time-tokens/email-verification-token.entity';
import { PasswordResetToken } from '../one-time-tokens/password-reset-token.entity';
import { OutboxMessage } from '../outbox/outbox-message.entity';
import { RefreshToken } from '../sessions/refresh-token.entity';
import { Session } from '../sessions/session.entity';

/** A table holding rows of one account, and the SQL condition (on `:userId`) that selects them. */
export interface AccountTable {
  entity: EntityTarget<ObjectLiteral>;
  condition: (manager: EntityManager) => string;
}

const byUserId = (entity: EntityTarget<ObjectLiteral>): AccountTable => ({ entity, condition: () => 'user_id = :userId' });

/**
 * Every table that holds rows of an account, deleted with it in one transaction (children first; the
 * foreign keys would cascade anyway, but an explicit list says what deletion means, and stays true for a
 * table added without a cascade). Audit events are not here: they stay, anonymised, for their retention.
 * The OIDC feature's tables (identities, pending states and exchange codes) sit above this folder and go
 * by their cascade, which the deletion suite checks.
 */
export const ACCOUNT_DATA: AccountTable[] = [
  {
    entity: RefreshToken,
    condition: (manager) => {
      const sessions = manager.connection.driver.escape(manager.connection.getMetadata(Session).tableName);
      return `session_id IN (SELECT id FROM ${sessions} WHERE user_id = :userId)`;
    },
  },
  byUserId(Session),
  byUserId(PasswordResetToken),
  byUserId(EmailVerificationToken),
  byUserId(EmailChangeToken),
  byUserId(MfaChallenge),
  byUserId(RecoveryCode),
  byUserId(TotpFactor),
  // Its pending mail, and the sent and dead messages that still hold its address.
  byUserId(OutboxMessage),
];
