import { Controller, Get, HttpCode, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse, ApiTags, getSchemaPath } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { Public, RedisConnection } from '../..';

const UP = { type: 'string', enum: ['up'] };

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
  @ApiOperation({ summary: 'Liveness: answers while the process serves HTTP, touching nothing', security: [] })
  @ApiOkResponse({
    description: 'The process is up',
    schema: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['ok'] } }, example: { status: 'ok' } },
  })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** 200 when the database (and Redis, when configured) answer within two seconds each. */
  @Get('ready')
  @HttpCode(200)
  @ApiOperation({ summary: 'Readiness: the database (and Redis, when configured) answer within two seconds', security: [] })
  @ApiOkResponse({
    description: 'Every dependency answered',
    schema: {
      type: 'object',
      required: ['status', 'checks'],
      properties: {
        status: { type: 'string', enum: ['ok'] },
        checks: { type: 'object', required: ['database'], properties: { database: UP, redis: UP } },
      },
      example: { status: 'ok', checks: { database: 'up', redis: 'up' } },
    },
  })
  @ApiResponse({
    status: 503,
    description: 'A dependency did not answer; `detail` names it',
    content: {
      'application/problem+json': {
        schema: { $ref: getSchemaPath('ProblemDetails') },
        example: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: 'Not ready: database not answering' },
      },
    },
  })
  async ready(): Promise<{ status: 'ok'; checks: Record<string, 'up'> }> {
    const checks: Record<string, Promise<unknown>> = { database: this.dataSource.query('SELECT 1') };
    if (this.redis.configured) checks.redis = this.redis.ping();
    const results = await Promise.allSettled(Object.values(checks).map((check) => within(check, CHECK_TIMEOUT_MS)));
    const down = Object.keys(checks).filter((_, i) => results[i].status === 'rejected');
    if (down.length > 0) throw new ServiceUnavailableException(`Not ready: ${down.join(', ')} not answering`);
    return { status: 'ok', checks: Object.fromEntries(Object.keys(checks).map((name) => [name, 'up'])) };
  }
}
