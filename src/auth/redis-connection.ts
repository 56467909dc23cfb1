import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import Redis from 'ioredis';
import { AUTH_CONFIG, AuthConfig } from './auth-config';

/** The module's own Redis client when `rateLimit.redisUrl` is set; every shared counter goes through it. */
@Injectable()
export class RedisConnection implements OnApplicationShutdown {
  readonly client: Redis | null;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig) {
    const url = config.rateLimit.redisUrl;
    // Bounded retries: a request waiting on an unreachable Redis fails after one retry instead of hanging.
    this.client = url ? new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: false }) : null;
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.client || this.client.status === 'end') return;
    // quit() waits for Redis to answer; with Redis unreachable it fails and the client would keep reconnecting.
    if (this.client.status === 'ready') await this.client.quit().catch(() => this.client!.disconnect());
    else this.client.disconnect();
  }
}
