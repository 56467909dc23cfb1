import { ConfigError, loadAppConfig } from './app-config';

const env = (extra: Record<string, string>) => ({ JWT_SECRET: 'x'.repeat(40), ...extra });

describe('logging and metrics settings', () => {
  it('logs JSON at info and serves no metrics by default', () => {
    expect(loadAppConfig(env({}))).toMatchObject({ logLevel: 'info', logFormat: 'json', metricsEnabled: false, metricsPort: undefined });
  });

  it('takes every pino level and the pretty format', () => {
    for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
      expect(loadAppConfig(env({ LOG_LEVEL: level })).logLevel).toBe(level);
    }
    expect(loadAppConfig(env({ LOG_FORMAT: 'pretty' })).logFormat).toBe('pretty');
  });

  it.each([
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "verbose"'],
    [{ LOG_FORMAT: 'text' }, 'LOG_FORMAT must be one of json, pretty, got "text"'],
    [{ METRICS_ENABLED: 'yes' }, 'METRICS_ENABLED must be true or false, got "yes"'],
    [{ METRICS_ENABLED: 'true', METRICS_PORT: '0' }, 'METRICS_PORT must be an integer from 1 to 65535, got "0"'],
    [{ METRICS_ENABLED: 'true', METRICS_PORT: '3000' }, 'METRICS_PORT must differ from PORT (3000); unset it to serve /metrics on PORT'],
    [{ METRICS_PORT: '9464' }, 'METRICS_PORT is set but METRICS_ENABLED is not true'],
  ])('refuses %j', (extra, message) => {
    expect(() => loadAppConfig(env(extra))).toThrow(new ConfigError(message));
  });

  it('serves metrics on their own port when asked', () => {
    expect(loadAppConfig(env({ METRICS_ENABLED: 'true', METRICS_PORT: '9464' }))).toMatchObject({ metricsEnabled: true, metricsPort: 9464 });
  });
});
