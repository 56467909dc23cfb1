import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { createHmac, hkdfSync, randomBytes, randomInt } from 'node:crypto';
import { EntityManager, IsNull, LessThan, MoreThan, Not, Or, Repository } from 'typeorm';
import { newOpaqueToken, sha256Hex } from '../common/opaque-tokens';
import { SecretBox } from '../common/secret-box';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { User } from '../users/user.entity';
import { MfaChallenge, RecoveryCode, TotpFactor } from './mfa.entities';
import { base32Decode, base32Encode, matchingStep, otpauthUrl } from './totp';

const SECRET_BYTES = 20; // 160 bits, RFC 4226's recommendation for HMAC-SHA-1
const RECOVERY_CODES = 10;
const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no 0/o, 1/l/i
const CHALLENGE_TTL_MS = 5 * 60 * 1000;

export type SecondFactor = 'totp' | 'recovery-code';

export interface PendingSetup {
  secret: string;
  otpauthUrl: string;
}

/**
 * TOTP factors, recovery codes and the `mfa_token` of a sign-in halfway through. Every write takes the
 * caller's transaction; the replay guard and single use are conditional UPDATEs, so of two requests
 * racing with one code, on one instance or two, exactly one wins.
 */
@Injectable()
export class MfaService {
  private readonly secrets: SecretBox;
  private readonly recoveryKey: Buffer;

  constructor(
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
    @InjectRepository(TotpFactor) private readonly factors: Repository<TotpFactor>,
    @InjectRepository(MfaChallenge) private readonly challenges: Repository<MfaChallenge>,
  ) {
    this.secrets = new SecretBox(config.jwtKey, 'totp secrets');
    this.recoveryKey = Buffer.from(hkdfSync('sha256', config.jwtKey.export(), 'nest-auth-service', 'recovery codes', 32));
  }

  /** A new secret, pending until `confirm`; a pending one from an earlier setup is replaced. */
  async beginSetup(manager: EntityManager, user: User): Promise<PendingSetup> {
    const secret = base32Encode(randomBytes(SECRET_BYTES));
    await manager.getRepository(TotpFactor).delete({ userId: user.id });
    await manager.getRepository(TotpFactor).insert({
      userId: user.id,
      secret: this.secrets.encrypt(String(user.id), Buffer.from(secret)),
      confirmedAt: null,
      lastUsedStep: null,
      createdAt: this.config.clock(),
    });
    return { secret, otpauthUrl: otpauthUrl(this.config.appName, user.email, secret) };
  }

  /** Enables the pending factor if `code` is from it; answers the recovery codes, or why not. */
  async confirm(manager: EntityManager, userId: number, code: string): Promise<string[] | 'no-pending' | 'invalid'> {
    const factor = await manager.getRepository(TotpFactor).findOneBy({ userId });
    if (!factor || factor.confirmedAt !== null) return 'no-pending';
    if (!(await this.useTotp(manager, factor, code))) return 'invalid';
    await manager.getRepository(TotpFactor).update({ userId }, { confirmedAt: this.config.clock() });
    await manager.getRepository(User).update({ id: userId }, { mfaEnabled: true });
    return this.replaceRecoveryCodes(manager, userId);
  }

  /** Uses a TOTP code or a recovery code of a user with a confirmed factor; null when neither. */
  async useCode(manager: EntityManager, userId: number, code: string): Promise<SecondFactor | null> {
    const factor = await manager.getRepository(TotpFactor).findOneBy({ userId, confirmedAt: Not(IsNull()) });
    if (!factor) return null;
    if (await this.useTotp(manager, factor, code)) return 'totp';
    const used = await manager
      .getRepository(RecoveryCode)
      .update({ userId, codeHash: this.recoveryHash(code), usedAt: IsNull() }, { usedAt: this.config.clock() });
    return used.affected === 1 ? 'recovery-code' : null;
  }

  /** A fresh set of recovery codes; the old set, used or not, is void. */
  async replaceRecoveryCodes(manager: EntityManager, userId: number): Promise<string[]> {
    const codes = Array.from({ length: RECOVERY_CODES }, () => newRecoveryCode());
    const now = this.config.clock();
    await manager.getRepository(RecoveryCode).delete({ userId });
    await manager.getRepository(RecoveryCode).insert(codes.map((code) => ({ userId, codeHash: this.recoveryHash(code), usedAt: null, createdAt: now })));
    return codes;
  }

  /** Removes the factor and its recovery codes. */
  async disable(manager: EntityManager, userId: number): Promise<void> {
    await manager.getRepository(TotpFactor).delete({ userId });
    await manager.getRepository(RecoveryCode).delete({ userId });
    await manager.getRepository(User).update({ id: userId }, { mfaEnabled: false });
  }

  /** The `mfa_token` a sign-in gets after its password, bound to the account and its token version. */
  async issueChallenge(manager: EntityManager, user: User, firstFactor: 'pwd' | 'oidc' = 'pwd'): Promise<string> {
    const token = newOpaqueToken();
    const now = this.config.clock().getTime();
    const challenges = manager.getRepository(MfaChallenge);
    // Expired ones of this user go as new ones come: the table holds at most a few live rows per user.
    await challenges.delete({ userId: user.id, expiresAt: LessThan(new Date(now)) });
    await challenges.insert({ tokenHash: sha256Hex(token), userId: user.id, tokenVersion: user.tokenVersion, firstFactor, expiresAt: new Date(now + CHALLENGE_TTL_MS), usedAt: null });
    return token;
  }

  /** The live challenge `token` names (unused, unexpired), or null. */
  findChallenge(token: string): Promise<MfaChallenge | null> {
    return this.challenges.findOneBy({ tokenHash: sha256Hex(token), usedAt: IsNull(), expiresAt: MoreThan(this.config.clock()) });
  }

  /** Spends a challenge; false when another request spent it first. */
  async spendChallenge(manager: EntityManager, challenge: MfaChallenge): Promise<boolean> {
    const spent = await manager.getRepository(MfaChallenge).update({ id: challenge.id, usedAt: IsNull() }, { usedAt: this.config.clock() });
    return spent.affected === 1;
  }

  /** Whether the user has a pending (unconfirmed) or confirmed factor. */
  async factorOf(userId: number): Promise<TotpFactor | null> {
    return this.factors.findOneBy({ userId });
  }

  /**
   * Accepts `code` if it belongs to a step within the drift window that is later than the last step
   * used: the conditional UPDATE makes a replay, in the same or an adjacent step, lose.
   */
  private async useTotp(manager: EntityManager, factor: TotpFactor, code: string): Promise<boolean> {
    const secret = base32Decode(this.secrets.decrypt(String(factor.userId), factor.secret).toString());
    const step = matchingStep(secret, code, this.config.clock().getTime());
    if (step === null) return false;
    const claimed = await manager
      .getRepository(TotpFactor)
      .update({ userId: factor.userId, lastUsedStep: Or(IsNull(), LessThan(step)) }, { lastUsedStep: step });
    return claimed.affected === 1;
  }

  private recoveryHash(code: string): string {
    const normalized = code.trim().toLowerCase().replace(/[\s-]/g, '');
    return createHmac('sha256', this.recoveryKey).update(normalized).digest('hex');
  }
}

/** `xxxx-xxxx-xxxx`: 12 characters of a 31-letter alphabet, about 59 bits. */
function newRecoveryCode(): string {
  const chars = Array.from({ length: 12 }, () => RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)]).join('');
  return `${chars.slice(0, 4)}-${chars.slice(4, 8)}-${chars.slice(8)}`;
}
