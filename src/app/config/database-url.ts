export type DatabaseTarget = { type: 'postgres'; url: string } | { type: 'sqlite'; path: string };

export const DEFAULT_DATABASE_URL = 'sqlite:./data/auth.sqlite';

/** `postgres://…` or `postgresql://…` selects PostgreSQL; `sqlite:<path>` a SQLite file. */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  if (/^postgres(ql)?:\/\//.test(url)) return { type: 'postgres', url };
  if (url.startsWith('sqlite:') && url.length > 'sqlite:'.length) return { type: 'sqlite', path: url.slice('sqlite:'.length) };
  throw new Error('must start with postgres://, postgresql:// or sqlite:<path>');
}
