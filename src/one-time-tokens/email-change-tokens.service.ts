import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EntityManager, IsNull, LessThanOrEqual, Not, Repository } from 'typeorm';
import { deleteInBatches } from '../common/delete-in-batches';
import { newOpaqueToken, sha256Hex } from '../common/opaque-tokens';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { EmailChangeToken } from './email-change-token.entity';
import { OneTimeTokens } from './one-time-tokens';

/** What a redeemed email change link stands for. */
export interface ConfirmedEmailChange {
  userId: number;
  newEmail: string;
  sessionId: string | null;
}

/**
 * Single-use email change links, valid for `emailChangeTokenTtlSeconds` from when they are mailed. As
 * for the other mailed tokens, the token is minted when its mail is rendered, so the outbox never holds
 * a usable link; the pending change (new address, requesting session) is written with the request.
 */
@Injectable()
export class EmailChangeTokensService extends OneTimeTokens {
  constructor(
    @InjectRepository(EmailChangeToken) private readonly tokens: Repository<EmailChangeToken>,
    private readonly transactionRunner: TransactionRunner,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {
    super(tokens, transactionRunner, config.emailChangeTokenTtlSeconds, config.clock);
  }

  /**
   * Records a pending change in the caller's transaction and voids every older one (and its link): only
   * the latest request can complete. `newEmail` is the stored form.
   */
  async request(manager: EntityManager, userId: number, newEmail: string, sessionId: string | null): Promise<void> {
    const tokens = manager.getRepository(EmailChangeToken);
    await tokens.delete({ userId });
    await tokens.insert({
      userId,
      // A hash whose token was never kept: the row redeems nothing until `mint` replaces it.
      tokenHash: sha256Hex(newOpaqueToken()),
      newEmail,
      sessionId,
      expiresAt: this.expiryFromNow(),
      usedAt: null,
    });
  }

  /**
   * A token for the user's pending change to `newEmail`, replacing any minted before (a retried send
   * voids the link of the failed attempt); null when no such change is pending, because a newer request
   * replaced it or it was used.
   */
  async mint(userId: number, newEmail: string): Promise<string | null> {
    const token = newOpaqueToken();
    const result = await this.tokens.update(
      { userId, newEmail, usedAt: IsNull() },
      { tokenHash: sha256Hex(token), expiresAt: this.expiryFromNow() },
    );
    return result.affected ? token : null;
  }

  /** Spends the token in the caller's transaction (the first caller wins); null when unknown, used or expired. */
  async redeemChange(manager: EntityManager, token: string): Promise<ConfirmedEmailChange | null> {
    const row = await this.claim<EmailChangeToken>(manager, token);
    return row && { userId: row.userId, newEmail: row.newEmail, sessionId: row.sessionId };
  }

  /**
   * Deletes used and expired changes, in batches: a row names an address that may belong to someone else
   * (a typo), which is kept no longer than the link could work. `Housekeeping` runs it hourly.
   */
  prune(): Promise<number> {
    return deleteInBatches(this.transactionRunner, EmailChangeToken, [{ usedAt: Not(IsNull()) }, { expiresAt: LessThanOrEqual(this.config.clock()) }]);
  }

  private expiryFromNow(): Date {
    return new Date(this.config.clock().getTime() + this.config.emailChangeTokenTtlSeconds * 1000);
  }
}
