import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type Redis from 'ioredis';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';

const CONNECT_TIMEOUT_MS = 2000;

/** ioredis is an optional peer dependency: it is loaded only when `rateLimit.redisUrl` is set. */
function loadIoredis(): typeof Redis {
  try {
    return require('ioredis') as typeof Redis;
  } catch (error) {
    if ((error as { code?: string }).code === 'MODULE_NOT_FOUND' && String(error).includes("'ioredis'")) {
      throw new Error('rateLimit.redisUrl is set but the optional peer dependency ioredis is not installed: npm install ioredis');
    }
    throw error;
  }
}

/**
 * The module's own Redis client when `rateLimit.redisUrl` is set; every shared counter goes through it.
 *
 * When Redis cannot be reached the service keeps answering and the counters fail open (see `failOpen`):
 * refusing every sign-in because a cache is down would hand an attacker a cheap outage, while argon2's
 * cost and the per-address limits of other layers still slow guessing. The outage is logged once when it
 * starts and once when it ends, and `/health/ready` answers 503 meanwhile.
 */
@Injectable()
export class RedisConnection implements OnModuleInit, OnApplicationShutdown {
  /** @internal The ioredis client (its type stays out of the published declarations: ioredis is an optional peer). */
  readonly client: Redis | null;
  private readonly logger = new Logger(RedisConnection.name);
  private available = true;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig) {
    const url = config.rateLimit.redisUrl;
    this.client = url
      ? new (loadIoredis())(url, {
          connectTimeout: CONNECT_TIMEOUT_MS,
          // Commands fail at once while disconnected instead of queueing behind reconnection attempts,
          // so a request never waits on an unreachable Redis.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
        })
      : null;
    this.client?.on('error', (error: Error) => this.markUnavailable(error));
    this.client?.on('ready', () => {
      if (!this.available) this.logger.log('Redis is reachable again: shared rate limits apply again');
      this.available = true;
    });
  }

  /** Waits (a bounded time) for the first connection, so the first requests are counted too. */
  async onModuleInit(): Promise<void> {
    const client = this.client;
    if (client === null || client.status === 'ready') return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        client.off('ready', done);
        resolve();
      };
      const timer = setTimeout(done, CONNECT_TIMEOUT_MS);
      client.once('ready', done);
    });
  }

  /** Whether shared counters are kept in Redis (`rateLimit.redisUrl` is set). */
  get configured(): boolean {
    return this.client !== null;
  }

  /** Resolves when Redis answers a PING; rejects when it does not (or is not configured). */
  async ping(): Promise<void> {
    if (!this.client) throw new Error('Redis is not configured');
    await this.client.ping();
  }

  /** Runs a Redis operation; if Redis fails, logs the outage (once) and answers `fallback` instead. */
  async failOpen<T>(operation: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await operation();
    } catch (error) {
      this.markUnavailable(error as Error);
      return fallback;
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.client || this.client.status === 'end') return;
    // quit() waits for Redis to answer; with Redis unreachable it fails and the client would keep reconnecting.
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client!.disconnect());
    else this.client.disconnect();
  }

  private markUnavailable(error: Error): void {
    if (!this.available) return;
    this.available = false;
    this.logger.error(`Redis is unreachable (${error.message}): rate limits are not enforced until it is back`);
  }
}
