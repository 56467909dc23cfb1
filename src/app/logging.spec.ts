import pino from 'pino';
import { loadAppConfig } from './config/app-config';
import { isoTimestamp, loggerOptions } from './logging';

describe('loggerOptions', () => {
  function linesOf(env: Record<string, string>, write: (logger: pino.Logger) => void): Record<string, unknown>[] {
    const lines: string[] = [];
    const logger = pino(loggerOptions(loadAppConfig({ JWT_SECRET: 'x'.repeat(40), ...env })), { write: (line: string) => lines.push(line) });
    write(logger);
    return lines.map((line) => JSON.parse(line));
  }

  it('writes the level as a word and the time in ISO 8601', () => {
    const [line] = linesOf({}, (logger) => logger.info('hello'));
    expect(line).toMatchObject({ level: 'info', msg: 'hello', time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) });
  });

  it('formats the time as toISOString does, across seconds and for every millisecond', () => {
    const start = Date.UTC(2026, 11, 3, 23, 59, 58, 990);
    for (let now = start; now < start + 2_100; now += 7) {
      expect(isoTimestamp(now)).toBe(`,"time":"${new Date(now).toISOString()}"`);
    }
    expect(isoTimestamp(start + 1_010)).toBe(',"time":"2026-12-04T00:00:00.000Z"');
  });

  it('lifts the request id a line names in its text into a field, leaving other lines alone', () => {
    const id = '7c1d2f4e-0000-4000-8000-00000000abcd';
    const lines = linesOf({}, (logger) => {
      logger.info({ context: 'AuthEvents' }, `event=signed_in user_id=42 request_id=${id} ip=203.0.113.9`);
      logger.error(`sign-up mail failed request_id=${id}: connection refused`);
      logger.info({ request_id: 'kept', status: 200 }, 'request completed');
      logger.info({ context: 'Mail' }, 'mail sent request_id=not-an-id');
    });
    expect(lines.map((line) => line.request_id)).toEqual([id, id, 'kept', undefined]);
    expect(lines[0]).toMatchObject({ context: 'AuthEvents', msg: `event=signed_in user_id=42 request_id=${id} ip=203.0.113.9` });
    expect(lines[1].msg).toBe(`sign-up mail failed request_id=${id}: connection refused`);
  });

  it('redacts secret fields and the credential headers, keeping the rest', () => {
    const [line] = linesOf({}, (logger) =>
      logger.info(
        {
          password: 'p1',
          new_password: 'p2',
          refresh_token: 't1',
          code: '123456',
          user_id: 7,
          req: { method: 'GET', headers: { authorization: 'Bearer abc', cookie: 'refresh_token=def', accept: '*/*' } },
          res: { headers: { 'set-cookie': 'refresh_token=ghi' } },
        },
        'event',
      ),
    );
    expect(line).toMatchObject({
      password: '[redacted]',
      new_password: '[redacted]',
      refresh_token: '[redacted]',
      code: '[redacted]',
      user_id: 7,
      req: { method: 'GET', headers: { authorization: '[redacted]', cookie: '[redacted]', accept: '*/*' } },
      res: { headers: { 'set-cookie': '[redacted]' } },
    });
  });

  it('follows LOG_LEVEL', () => {
    const lines = linesOf({ LOG_LEVEL: 'warn' }, (logger) => {
      logger.info('quiet');
      logger.warn('loud');
    });
    expect(lines.map((line) => line.msg)).toEqual(['loud']);
  });
});
