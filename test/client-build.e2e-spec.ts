import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The client's types are generated from the document the server serves (client/openapi.json and
 * client/api-types.ts, committed): stale files fail here, so a route or shape change cannot ship with a
 * client typed against the old one. The built module (dist/client, from `npm run build`, which `npm test`
 * runs first) is one ES module that imports nothing, so a browser loads it as is.
 */
const ROOT = join(__dirname, '..');

describe('the browser client build', () => {
  it('has generated files that match the document the server serves now (else: npm run client:generate)', () => {
    const check = spawnSync(process.execPath, [join(ROOT, 'client', 'generate.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  });

  it('is one ES module with no import of anything, marked as ESM inside the CommonJS package', () => {
    const source = readFileSync(join(ROOT, 'dist', 'client', 'index.js'), 'utf8');
    expect(source).toMatch(/^export function createAuthClient\(/m);
    expect(source).toMatch(/^export class AuthError extends Error/m);
    expect(source.match(/^\s*import\b|\bimport\s*\(|\brequire\s*\(/gm)).toBeNull();
    expect(JSON.parse(readFileSync(join(ROOT, 'dist', 'client', 'package.json'), 'utf8'))).toMatchObject({ type: 'module' });
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(pkg.exports['./client']).toEqual({ types: './dist/client/index.d.ts', default: './dist/client/index.js' });
  });
});
