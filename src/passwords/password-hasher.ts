import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import * as argon2 from 'argon2';
import { randomBytes } from 'node:crypto';
import { QueueFullError, WorkLimiter } from '../common/bounded-queue';
import { ServiceBusyException } from '../common/exceptions';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { AuthErrors } from '../common/auth.errors';
import { AuthMetrics, noMetrics } from '../metrics/auth-metrics';

/** 503 with Retry-After: the hashing queue is full; the client should come back in a moment. */
export class HashingBusyException extends ServiceBusyException {
  constructor() {
    super(AuthErrors.BUSY, 1);
  }
}

export type PasswordCheck = 'mismatch' | 'match' | 'match-needs-rehash';

/** libuv's pool has 4 threads unless UV_THREADPOOL_SIZE, read once by the process when the pool starts, says otherwise. */
const LIBUV_DEFAULT_POOL_SIZE = 4;

/**
 * Hashes beyond the pool's threads only queue inside libuv, and they hold every thread that file and DNS
 * work also needs: say so once, since the fix (UV_THREADPOOL_SIZE) must be set before the process starts.
 */
export function warnOnSmallThreadPool(maxConcurrent: number): void {
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE) || LIBUV_DEFAULT_POOL_SIZE;
  if (poolSize >= maxConcurrent + 2) return;
  new Logger('PasswordHasher').warn(
    `passwordHashing.maxConcurrent is ${maxConcurrent} but the thread pool has ${poolSize} threads: ` +
      `start the process with UV_THREADPOOL_SIZE=${maxConcurrent + 2} (or lower maxConcurrent)`,
  );
}

/**
 * Argon2id hashing with the configured cost. Argon2 runs in libuv's thread pool, off the event loop; at
 * most `maxConcurrent` hashes run at once (each holds `memoryCost` KiB) and at most `maxQueued` wait, so
 * a sign-in flood has a fixed memory ceiling and is answered 503 beyond it rather than slowly.
 */
@Injectable()
export class PasswordHasher implements OnModuleInit {
  private readonly hashOptions: argon2.HashOptions;
  private readonly limiter: WorkLimiter;
  private dummyHash: string;

  constructor(
    @Inject(AUTH_CONFIG) config: AuthConfig,
    private readonly metrics: AuthMetrics = noMetrics(),
  ) {
    const { maxConcurrent, maxQueued, ...cost } = config.passwordHashing;
    this.hashOptions = { type: argon2.argon2id, ...cost };
    const limiter = new WorkLimiter(maxConcurrent, maxQueued);
    this.limiter = limiter;
    metrics.readHashingLoadWith(() => ({ waiting: limiter.queued, running: limiter.inFlight }));
    warnOnSmallThreadPool(maxConcurrent);
  }

  async onModuleInit(): Promise<void> {
    // Verified in place of a real hash when the account does not exist, so an unknown email costs
    // the same time as a wrong password and sign-in timing does not reveal which emails have accounts.
    this.dummyHash = await this.hash(randomBytes(32).toString('base64'));
  }

  /**
   * Refuses at once when the hashing queue is full: called before a request's database work, so a flood
   * is turned away for the price of a check instead of a query each.
   */
  assertCapacity(): void {
    if (this.limiter.full) throw this.busy();
  }

  hash(password: string): Promise<string> {
    return this.bounded(() => argon2.hash(password, this.hashOptions));
  }

  /** Checks the password against the stored hash, or against a dummy hash when there is none. */
  async verify(storedHash: string | null, password: string): Promise<PasswordCheck> {
    let matches: boolean;
    try {
      matches = await this.bounded(() => argon2.verify(storedHash ?? this.dummyHash, password));
    } catch (error) {
      if (error instanceof HashingBusyException) throw error;
      // A stored value that is not an argon2 hash never matches.
      return 'mismatch';
    }
    if (!matches || storedHash === null) return 'mismatch';
    const stale = !storedHash.startsWith('$argon2id$') || argon2.needsRehash(storedHash, this.hashOptions);
    return stale ? 'match-needs-rehash' : 'match';
  }

  private async bounded<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await this.limiter.run(work);
    } catch (error) {
      throw error instanceof QueueFullError ? this.busy() : error;
    }
  }

  private busy(): HashingBusyException {
    this.metrics.hashingRejected();
    return new HashingBusyException();
  }
}
