import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { createHash, randomBytes } from 'node:crypto';
import { IsNull, Repository } from 'typeorm';
import { AUTH_CONFIG, AuthConfig } from './auth-config';
import { PasswordResetToken } from './password-reset-token.entity';

function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Issues and redeems single-use password reset tokens. */
@Injectable()
export class PasswordResetTokensService {
  constructor(
    @InjectRepository(PasswordResetToken) private readonly tokens: Repository<PasswordResetToken>,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  /** Returns a new token for the user and voids every older one, so only the latest emailed link works. */
  async issue(userId: number): Promise<string> {
    // 256 bits from the CSPRNG: guessing is hopeless, so a plain SHA-256 (no salt, no slow hash) is enough
    // to keep the stored value useless to someone who reads the table.
    const token = randomBytes(32).toString('base64url');
    const now = this.config.clock();
    await this.tokens.delete({ userId });
    await this.tokens.insert({
      userId,
      tokenHash: sha256Hex(token),
      expiresAt: new Date(now.getTime() + this.config.passwordResetTokenTtlSeconds * 1000),
      usedAt: null,
    });
    return token;
  }

  /**
   * Marks the token used and returns its user id, or null when it is unknown, expired or already used.
   * The conditional UPDATE is the claim: when several requests redeem one token at once, exactly one of
   * them changes the row, and only that one gets the user id.
   */
  async redeem(token: string): Promise<number | null> {
    const row = await this.tokens.findOneBy({ tokenHash: sha256Hex(token), usedAt: IsNull() });
    const now = this.config.clock();
    if (!row || row.expiresAt.getTime() <= now.getTime()) return null;
    const claim = await this.tokens.update({ id: row.id, usedAt: IsNull() }, { usedAt: now });
    return claim.affected === 1 ? row.userId : null;
  }
}
