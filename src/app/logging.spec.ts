import pino from 'pino';
import { loadAppConfig } from './config/app-config';
import { loggerOptions } from './logging';

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
