/**
 * The Redis the suites share, as found or started by global-setup.mjs, and whether the Redis suites can
 * run at all. Without a Redis (and no redis-server to start one) they are skipped; the setup has already
 * said so in one line, or failed the run under CI=true.
 */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Set when no Redis answers and none could be started: what is missing. */
export const REDIS_MISSING = process.env.TEST_REDIS_MISSING;

/** The redis-server binary, for the suite that starts and stops a Redis of its own. */
export const REDIS_SERVER_BIN = process.env.TEST_REDIS_SERVER_BIN ?? 'redis-server';

/** Set when there is no redis-server on the PATH. */
export const REDIS_SERVER_MISSING = process.env.TEST_REDIS_SERVER_MISSING;

/** TEST_REDIS_URL with logical database `db` selected. */
export function redisDatabaseUrl(db: number): string {
  const url = new URL(TEST_REDIS_URL);
  url.pathname = `/${db}`;
  return url.toString();
}
