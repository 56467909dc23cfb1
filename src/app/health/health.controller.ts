import { Controller, Get, HttpCode, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { Public, RedisConnection } from '../..';

const CHECK_TIMEOUT_MS = 2_000;

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

@ApiTags('Health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly redis: RedisConnection,
  ) {}

  /** Answers as long as the process serves HTTP; touches nothing (the baseline for benchmarks). */
  @Get('live')
  @ApiOkResponse({ schema: { example: { status: 'ok' } } })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** 200 when the database (and Redis, when configured) answer within two seconds each. */
  @Get('ready')
  @HttpCode(200)
  @ApiOkResponse({ schema: { example: { status: 'ok', checks: { database: 'up', redis: 'up' } } } })
  @ApiServiceUnavailableResponse({ description: 'A dependency did not answer' })
  async ready(): Promise<{ status: 'ok'; checks: Record<string, 'up'> }> {
    const checks: Record<string, Promise<unknown>> = { database: this.dataSource.query('SELECT 1') };
    if (this.redis.client) checks.redis = this.redis.client.ping();
    const results = await Promise.allSettled(Object.values(checks).map((check) => within(check, CHECK_TIMEOUT_MS)));
    const down = Object.keys(checks).filter((_, i) => results[i].status === 'rejected');
    if (down.length > 0) throw new ServiceUnavailableException(`Not ready: ${down.join(', ')} not answering`);
    return { status: 'ok', checks: Object.fromEntries(Object.keys(checks).map((name) => [name, 'up'])) };
  }
}
