import { EntityManager, IsNull, Repository } from 'typeorm';
import { newOpaqueToken, sha256Hex } from '../common/opaque-tokens';
import type { TransactionRunner } from '../common/transaction-runner';
import type { OneTimeToken } from './one-time-token.entity';

/**
 * Single-use secrets that travel by mail (password reset, email verification). Only the SHA-256 of a
 * token is stored, so a database leak reveals no usable link.
 */
export abstract class OneTimeTokens {
  protected constructor(
    private readonly repository: Repository<OneTimeToken>,
    private readonly transactions: TransactionRunner,
    private readonly ttlSeconds: number,
    private readonly clock: () => Date,
  ) {}

  /** Returns a new token for the user and voids every older one, so only the latest mailed link works. */
  async issue(userId: number): Promise<string> {
    const token = newOpaqueToken();
    const now = this.clock();
    await this.transactions.run(async (manager) => {
      const tokens = manager.getRepository<OneTimeToken>(this.repository.target);
      await tokens.delete({ userId });
      await tokens.insert({
        userId,
        tokenHash: sha256Hex(token),
        expiresAt: new Date(now.getTime() + this.ttlSeconds * 1000),
        usedAt: null,
      });
    });
    return token;
  }

  /** Voids every token of the user, in the caller's transaction. */
  async voidAll(manager: EntityManager, userId: number): Promise<void> {
    await manager.getRepository<OneTimeToken>(this.repository.target).delete({ userId });
  }

  /** The user id of a token that is known, unused and unexpired, or null; changes nothing. */
  async peek(token: string): Promise<number | null> {
    return (await this.findRedeemable(this.repository, token))?.userId ?? null;
  }

  /**
   * Marks the token used, in the caller's transaction, and returns its user id; null when it is
   * unknown, expired or already used. The conditional UPDATE is the claim: when several requests redeem
   * one token at once, exactly one of them changes the row, and only that one gets the user id.
   */
  async redeem(manager: EntityManager, token: string): Promise<number | null> {
    return (await this.claim(manager, token))?.userId ?? null;
  }

  /** `redeem`, returning the whole row claimed (for token kinds that carry more than the user id). */
  protected async claim<T extends OneTimeToken>(manager: EntityManager, token: string): Promise<T | null> {
    const tokens = manager.getRepository<OneTimeToken>(this.repository.target);
    const row = await this.findRedeemable(tokens, token);
    if (!row) return null;
    const claim = await tokens.update(
      { id: row.id, usedAt: IsNull() },
      { usedAt: this.clock() },
    );
    return claim.affected === 1 ? (row as T) : null;
  }

  private async findRedeemable(tokens: Repository<OneTimeToken>, token: string): Promise<OneTimeToken | null> {
    const row = await tokens.findOneBy({ tokenHash: sha256Hex(token), usedAt: IsNull() });
    return row && row.expiresAt.getTime() > this.clock().getTime() ? row : null;
  }
}
