import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

/**
 * Arrows between the folders of src/ run one way. Each folder lists the folders it may import from;
 * anything else fails here. A new feature folder adds its row in the same commit.
 * `index` is the public barrel (src/index.ts); the standalone server (app) sees the library only through it.
 */
const ALLOWED: Record<string, string[]> = {
  app: ['index'],
  index: ['module', 'account', 'auth', 'audit', 'users', 'sessions', 'outbox', 'one-time-tokens', 'passwords', 'signing-keys', 'metrics', 'common', 'options', 'migrations'],
  module: ['oidc', 'account', 'auth', 'audit', 'emails', 'sessions', 'outbox', 'one-time-tokens', 'users', 'passwords', 'rate-limits', 'signing-keys', 'mfa', 'metrics', 'common', 'options'],
  oidc: ['auth', 'audit', 'sessions', 'outbox', 'users', 'mfa', 'one-time-tokens', 'rate-limits', 'metrics', 'common', 'options'],
  auth: ['account', 'audit', 'sessions', 'outbox', 'one-time-tokens', 'users', 'passwords', 'rate-limits', 'signing-keys', 'mfa', 'metrics', 'common', 'options'],
  account: ['audit', 'sessions', 'outbox', 'one-time-tokens', 'users', 'passwords', 'rate-limits', 'mfa', 'metrics', 'common', 'options'],
  emails: ['outbox', 'one-time-tokens', 'users', 'common', 'options'],
  sessions: ['users', 'common', 'options'],
  outbox: ['users', 'metrics', 'common', 'options'],
  'one-time-tokens': ['users', 'common', 'options'],
  users: ['common', 'options'],
  passwords: ['metrics', 'common', 'options'],
  'rate-limits': ['metrics', 'common', 'options'],
  'signing-keys': ['common', 'options'],
  mfa: ['one-time-tokens', 'users', 'common', 'options'],
  audit: ['common', 'options'],
  metrics: ['options'],
  common: ['options'],
  options: [],
  migrations: ['options'],
};

const SRC = join(__dirname, '..', 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts') ? [path] : [];
  });
}

/** The top folder under src/ a path belongs to (`index` for the barrel itself). */
function folderOf(path: string): string {
  const [first, ...rest] = relative(SRC, path).split(sep);
  return rest.length === 0 ? first.replace(/\.ts$/, '') : first;
}

/** Every relative module specifier in a file: static imports, re-exports, `import()` and `require()`. */
export function relativeImports(source: string): string[] {
  const pattern = /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]*|\.{1,2})['"]/gm;
  return [...source.matchAll(pattern)].map((match) => match[1]);
}

function arrows(): { from: string; to: string; file: string; specifier: string }[] {
  return sourceFiles(SRC).flatMap((file) =>
    relativeImports(readFileSync(file, 'utf8')).map((specifier) => {
      const target = normalize(join(dirname(file), specifier));
      const to = target === SRC ? 'index' : folderOf(target.endsWith('.ts') ? target : `${target}.ts`);
      return { from: folderOf(file), to, file: relative(SRC, file), specifier };
    }),
  );
}

describe('folder arrows in src/', () => {
  it('finds the imports it checks (static, re-export, require, side effect)', () => {
    const source = [
      "import { A } from '../auth/a';",
      "export { B } from './b';",
      "const c = require('../common/c') as C;",
      "import '../options/d';",
      "import type * as E from '..';",
      "import { F } from '@nestjs/common';",
    ].join('\n');
    expect(relativeImports(source)).toEqual(['../auth/a', './b', '../common/c', '../options/d', '..']);
  });

  it('knows every folder of src/', () => {
    const folders = new Set(sourceFiles(SRC).map(folderOf));
    expect([...folders].filter((folder) => !(folder in ALLOWED))).toEqual([]);
  });

  it('has only arrows the table allows', () => {
    const forbidden = arrows()
      .filter(({ from, to }) => from !== to && !ALLOWED[from].includes(to))
      .map(({ from, to, file, specifier }) => `${from} -> ${to} (${file} imports '${specifier}')`);
    expect(forbidden).toEqual([]);
  });
});
