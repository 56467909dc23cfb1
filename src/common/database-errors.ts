/** Socket errors: the database cannot be reached, or the connection to it broke. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * PostgreSQL SQLSTATEs that say the server is away, starting, shutting down, full or too slow, not that
 * the statement was wrong: class 08 (connection exception), 53300 too_many_connections, 57014
 * query_canceled (the statement timeout), 57P01-57P03 (shutting down, crashed, not yet accepting).
 */
const POSTGRES_STATES = /^(08...|53300|57014|57P0[123])$/;

/** node-postgres and pg-pool say these in words only, without a code. */
const POSTGRES_MESSAGES =
  /^(Connection terminated|Connection ended|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error and is not queryable|Client was closed and is not queryable)/;

/** SQLite's busy timeout ran out: another process holds the write lock. */
const SQLITE_CODES = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED']);

/**
 * Whether `error` (or what it wraps: a TypeORM `QueryFailedError`'s `driverError`, an error's `cause`)
 * says the database is unavailable for now, as opposed to a bug or a broken schema: the former is a 503
 * worth retrying, the latter a 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 5; depth++) {
    const { code, message } = current as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (NETWORK_CODES.has(code) || POSTGRES_STATES.test(code) || SQLITE_CODES.has(code))) return true;
    if (typeof message === 'string' && POSTGRES_MESSAGES.test(message)) return true;
    const wrapper = current as { driverError?: unknown; cause?: unknown };
    current = wrapper.driverError ?? wrapper.cause;
  }
  return false;
}
