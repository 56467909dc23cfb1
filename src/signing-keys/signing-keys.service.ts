import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { createHash, createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject } from 'node:crypto';
import { EntityManager, In, IsNull, Repository } from 'typeorm';
import { TransactionRunner } from '../common/transaction-runner';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import type { JwtAlgorithm } from './compact-jws';
import { SecretBox, SecretBoxError } from '../common/secret-box';
import { SigningKey } from './signing-key.entity';

/** Thrown when the configured secret does not open a stored private key: start-up must stop there. */
export class SigningKeyDecryptionError extends Error {
  constructor(readonly kid: string) {
    super(
      `AuthModule: jwtSecret (JWT_SECRET) does not decrypt the stored signing key ${kid}: start with the secret ` +
        'the keys were created under, or revoke them (keys:revoke) so new ones are made',
    );
    this.name = 'SigningKeyDecryptionError';
  }
}

/** A public key as the JWKS lists it (RFC 7517). */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  y?: string;
  kid: string;
  alg: JwtAlgorithm;
  use: 'sig';
}

/** The key the next token is signed with. */
export interface SigningKeyInUse {
  kid: string;
  algorithm: JwtAlgorithm;
  key: KeyObject;
}

interface KeyTimes {
  kid: string;
  algorithm: string;
  activatesAt: number;
  revokedAt: number | null;
}

interface LoadedKey extends KeyTimes {
  algorithm: JwtAlgorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
  jwk: PublicJwk;
}

/** Any constant: the PostgreSQL advisory lock that makes one instance at a time create keys. */
const CREATE_LOCK = 0x61757468;
/** Unknown key ids make an instance look in the database again, at most this often. */
const UNKNOWN_KID_RELOAD_MS = 1000;
/** Keys no longer published are deleted after this long. */
const KEEP_AFTER_RETIREMENT_MS = 24 * 3600 * 1000;

/**
 * The keys access tokens are signed with. With HS256 that is the JWT secret alone (its `kid` is a
 * fingerprint). With EdDSA or ES256 they are key pairs in the database, private parts encrypted under
 * the secret, shared by every instance:
 *
 * - a new key is created `publishDelaySeconds` (10 min) before it signs, and every instance reloads the
 *   keys every `refreshSeconds`, so no instance, and no verifier caching the JWKS for its 5 min, meets a
 *   token before its key; an instance shown an unknown `kid` also looks again (at most once a second);
 * - every `rotationDays` the next key is made; a retired key stays published until the last token it
 *   signed has expired (`accessTokenTtlSeconds` after its successor took over), then it is deleted;
 * - a revoked key is withdrawn on every instance at its next reload, and tokens naming it are refused.
 *   If it was the one signing, a new key signs at once (there is no time to wait for publishing).
 */
@Injectable()
export class SigningKeys implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(SigningKeys.name);
  private readonly algorithm: JwtAlgorithm;
  private readonly hmac: SigningKeyInUse | null;
  private readonly encryption: SecretBox | null;
  private keys = new Map<string, LoadedKey>();
  private lastLoad = 0;
  private loading: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
    @InjectRepository(SigningKey) private readonly repository: Repository<SigningKey>,
    private readonly transactions: TransactionRunner,
  ) {
    this.algorithm = config.jwtAlgorithm;
    if (this.algorithm === 'HS256') {
      const fingerprint = createHmac('sha256', config.jwtKey).update('kid').digest('base64url').slice(0, 16);
      this.hmac = { kid: `hs256-${fingerprint}`, algorithm: 'HS256', key: config.jwtKey };
      this.encryption = null;
    } else {
      this.hmac = null;
      this.encryption = new SecretBox(config.jwtKey, 'signing key private halves');
    }
  }

  /** Loads (and on first start creates) the keys; a key the secret does not decrypt stops start-up. */
  async onModuleInit(): Promise<void> {
    if (this.hmac) return;
    await this.maintain();
    this.timer = setInterval(() => {
      this.maintain().catch((error: Error) => this.logger.error(`signing keys not refreshed: ${error.message}`));
    }, this.config.signingKeys.refreshSeconds * 1000);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Whether a token naming `kid` may still be accepted: the key is published (not revoked, not retired). */
  isPublished(kid: string): boolean {
    const key = this.keys.get(kid);
    return key !== undefined && publishedOf([...this.keys.values()], this.algorithm, this.now(), this.ttlMs()).includes(key);
  }

  /** Whether tokens are signed with key pairs (EdDSA, ES256) that a JWKS publishes. */
  get publishesKeys(): boolean {
    return this.hmac === null;
  }

  /** The key to sign with now: the newest active one. */
  current(): SigningKeyInUse {
    if (this.hmac) return this.hmac;
    const current = currentOf([...this.keys.values()], this.algorithm, this.now());
    if (!current) throw new Error('AuthModule: no signing key is active (the database could not be reached at start-up?)');
    return { kid: current.kid, algorithm: current.algorithm, key: current.privateKey };
  }

  /** The public key a token naming `kid` with `algorithm` is checked against; null refuses the token. */
  async verificationKey(kid: string | undefined, algorithm: string): Promise<KeyObject | null> {
    if (algorithm !== this.algorithm) return null;
    if (this.hmac) {
      // Tokens issued before tokens named their key carry no kid; the secret alone can have made them.
      return kid === undefined || kid === this.hmac.kid ? this.hmac.key : null;
    }
    if (kid === undefined) return null;
    let key = this.keys.get(kid);
    if (!key && Date.now() - this.lastLoad >= UNKNOWN_KID_RELOAD_MS) {
      await this.load();
      key = this.keys.get(kid);
    }
    return key && this.isPublished(kid) ? key.publicKey : null;
  }

  /** The JWKS (RFC 7517) of every key a verifier may meet: pending, signing and retired but not yet expired. */
  jwks(): { keys: PublicJwk[] } {
    return { keys: publishedOf([...this.keys.values()], this.algorithm, this.now(), this.ttlMs()).map((key) => key.jwk) };
  }

  /**
   * Creates the next key now: published at once, signing after the publish delay (`keys:rotate`). A key
   * already waiting to sign is kept rather than doubled.
   */
  async rotate(): Promise<{ kid: string; activatesAt: Date }> {
    this.assertKeyPairs();
    const created = await this.createUnderLock((rows, now) => {
      const pending = rows.find((row) => usable(row, this.algorithm) && row.activatesAt > now);
      return pending ? null : now + this.publishDelayMs();
    });
    await this.load();
    const pending = [...this.keys.values()].filter((key) => key.revokedAt === null && key.activatesAt > this.now());
    const next = created ?? pending.sort((a, b) => b.activatesAt - a.activatesAt)[0];
    return { kid: next.kid, activatesAt: new Date(next.activatesAt) };
  }

  /** Withdraws a key at once; false when no such key is live. A new key signs at once if it was the current one. */
  async revoke(kid: string): Promise<boolean> {
    this.assertKeyPairs();
    const revoked = await this.transactions.run(async (manager) => {
      const result = await manager.update(SigningKey, { kid, revokedAt: IsNull() }, { revokedAt: new Date(this.now()) });
      return (result.affected ?? 0) > 0;
    });
    await this.maintain();
    return revoked;
  }

  /** Reloads the keys and makes the one that is due, if any. */
  private async maintain(): Promise<void> {
    await this.load();
    const due = (rows: KeyTimes[], now: number): number | null => {
      const current = currentOf(rows, this.algorithm, now);
      if (!current) return now;
      const pending = rows.some((row) => usable(row, this.algorithm) && row.activatesAt > now);
      const rotationMs = this.config.signingKeys.rotationDays * 24 * 3600 * 1000;
      return !pending && now - current.activatesAt >= rotationMs - this.publishDelayMs() ? now + this.publishDelayMs() : null;
    };
    if (due([...this.keys.values()], this.now()) !== null) {
      await this.createUnderLock(due);
      await this.load();
    }
    await this.prune();
  }

  /**
   * Creates a key activating at `activatesAtOf(rows, now)` (null: none is needed), deciding on rows read
   * under a lock, so that instances starting together make one key, not one each.
   */
  private async createUnderLock(activatesAtOf: (rows: KeyTimes[], now: number) => number | null): Promise<LoadedKey | null> {
    const created = await this.transactions.run(async (manager) => {
      if (this.transactions.isPostgres) await manager.query('SELECT pg_advisory_xact_lock($1)', [CREATE_LOCK]);
      const rows = (await manager.find(SigningKey)).map(timesOf);
      const now = this.now();
      const activatesAt = activatesAtOf(rows, now);
      return activatesAt === null ? null : this.insert(manager, now, activatesAt);
    });
    if (created) this.logger.log(`signing key ${created.kid} (${this.algorithm}) created; it signs from ${new Date(created.activatesAt).toISOString()}`);
    return created;
  }

  private async insert(manager: EntityManager, now: number, activatesAt: number): Promise<LoadedKey> {
    const { privateKey, publicKey } =
      this.algorithm === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const material = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string; y?: string };
    const kid = thumbprint(material);
    const row: SigningKey = {
      kid,
      algorithm: this.algorithm,
      publicJwk: JSON.stringify(material),
      privateKey: this.encryption!.encrypt(kid, privateKey.export({ format: 'der', type: 'pkcs8' })),
      createdAt: new Date(now),
      activatesAt: new Date(activatesAt),
      revokedAt: null,
    };
    await manager.insert(SigningKey, row);
    return this.loaded(row);
  }

  /** One query; keys seen before are not decrypted again. Concurrent callers share one load. */
  private load(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const rows = await this.repository.find();
        this.keys = new Map(rows.map((row) => [row.kid, this.refreshed(row)]));
        this.lastLoad = Date.now();
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  private refreshed(row: SigningKey): LoadedKey {
    const known = this.keys.get(row.kid);
    return known ? { ...known, revokedAt: row.revokedAt?.getTime() ?? null } : this.loaded(row);
  }

  private loaded(row: SigningKey): LoadedKey {
    let der: Buffer;
    try {
      der = this.encryption!.decrypt(row.kid, row.privateKey);
    } catch (error) {
      throw error instanceof SecretBoxError ? new SigningKeyDecryptionError(row.kid) : error;
    }
    const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    const material = JSON.parse(row.publicJwk) as Omit<PublicJwk, 'kid' | 'alg' | 'use'>;
    return {
      ...timesOf(row),
      algorithm: row.algorithm as JwtAlgorithm,
      privateKey,
      publicKey: createPublicKey(privateKey),
      jwk: { ...material, kid: row.kid, alg: row.algorithm as JwtAlgorithm, use: 'sig' },
    };
  }

  /** Deletes keys a day after no token they signed can still be live (and revoked ones a day after revocation). */
  private async prune(): Promise<void> {
    const now = this.now();
    const all = [...this.keys.values()];
    const published = new Set(publishedOf(all, this.algorithm, now, this.ttlMs() + KEEP_AFTER_RETIREMENT_MS));
    const stale = all
      .filter((key) => (key.revokedAt !== null ? now - key.revokedAt > KEEP_AFTER_RETIREMENT_MS : !published.has(key)))
      .filter((key) => key.algorithm === this.algorithm || key.activatesAt < now - this.ttlMs() - KEEP_AFTER_RETIREMENT_MS)
      .map((key) => key.kid);
    if (stale.length === 0) return;
    await this.transactions.run((manager) => manager.delete(SigningKey, { kid: In(stale) }));
    for (const kid of stale) this.keys.delete(kid);
  }

  private assertKeyPairs(): void {
    if (this.hmac) throw new Error('jwtAlgorithm is HS256: there are no signing keys to rotate or revoke (change jwtSecret instead)');
  }

  private now(): number {
    return this.config.clock().getTime();
  }

  private ttlMs(): number {
    return this.config.accessTokenTtlSeconds * 1000;
  }

  private publishDelayMs(): number {
    return this.config.signingKeys.publishDelaySeconds * 1000;
  }
}

function timesOf(row: SigningKey): KeyTimes {
  return { kid: row.kid, algorithm: row.algorithm, activatesAt: row.activatesAt.getTime(), revokedAt: row.revokedAt?.getTime() ?? null };
}

function usable(key: KeyTimes, algorithm: JwtAlgorithm): boolean {
  return key.revokedAt === null && key.algorithm === algorithm;
}

/** The newest usable key that has activated. */
function currentOf<K extends KeyTimes>(keys: K[], algorithm: JwtAlgorithm, now: number): K | undefined {
  return keys
    .filter((key) => usable(key, algorithm) && key.activatesAt <= now)
    .reduce<K | undefined>((newest, key) => (!newest || key.activatesAt > newest.activatesAt ? key : newest), undefined);
}

/**
 * The usable keys a live token may name: each until `ttlMs` after the next activated key took over
 * (no successor yet: still signing, or waiting to).
 */
function publishedOf<K extends KeyTimes>(keys: K[], algorithm: JwtAlgorithm, now: number, ttlMs: number): K[] {
  const ordered = keys.filter((key) => usable(key, algorithm)).sort((a, b) => a.activatesAt - b.activatesAt);
  return ordered.filter((_key, i) => {
    const successor = ordered.slice(i + 1).find((next) => next.activatesAt <= now);
    return !successor || now < successor.activatesAt + ttlMs;
  });
}

/** RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order. */
function thumbprint(jwk: { kty: string; crv: string; x: string; y?: string }): string {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}
