import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useTestApp } from './support/test-app';

const ROOT = join(__dirname, '..');
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);
/** Quiet, offline: no telemetry or update check reaching the network from a test. */
const LINT_ENV = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };

interface Finding {
  severity: 'error' | 'warning';
  rule: string;
  where: string;
  message: string;
}

/** Runs a linter that exits non-zero on findings; its JSON report is on stdout either way. */
function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { cwd: ROOT, env: LINT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stdout } = error as { stdout?: string };
    if (stdout?.trim()) return stdout;
    throw error;
  }
}

function redocly(file: string): Finding[] {
  const out = run(bin('redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json']);
  const report = JSON.parse(out.slice(out.indexOf('{'))) as {
    problems: { ruleId: string; severity: string; message: string; location: { pointer: string }[] }[];
  };
  return report.problems.map((p) => ({
    severity: p.severity === 'error' ? 'error' : 'warning',
    rule: p.ruleId,
    where: p.location[0]?.pointer ?? '',
    message: p.message,
  }));
}

function spectral(file: string): Finding[] {
  const out = run(bin('spectral'), ['lint', file, '--ruleset', join(ROOT, '.spectral.yaml'), '--format', 'json', '--quiet']);
  const results = JSON.parse(out.slice(out.indexOf('['))) as { code: string; severity: number; message: string; path: string[] }[];
  return results.map((r) => ({
    severity: r.severity === 0 ? 'error' : 'warning',
    rule: r.code,
    where: r.path.join('.'),
    message: r.message,
  }));
}

/** The document as /docs-json serves it, linted as a client author would: Redocly `recommended`, Spectral `spectral:oas`. */
describe('OpenAPI document lint', () => {
  const { t } = useTestApp('sqlite', { adapter: 'express' });
  let dir: string;
  let file: string;

  beforeAll(async () => {
    const res = await t.http().get('/docs-json').expect(200);
    dir = mkdtempSync(join(tmpdir(), 'openapi-lint-'));
    file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(res.body, null, 2));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ['redocly', redocly],
    ['spectral', spectral],
  ])('%s reports no error', (name, lint) => {
    const findings = lint(file);
    const warnings = findings.filter((f) => f.severity === 'warning');
    if (warnings.length > 0) {
      const byRule = warnings.reduce<Record<string, number>>((acc, f) => ({ ...acc, [f.rule]: (acc[f.rule] ?? 0) + 1 }), {});
      process.stdout.write(`${name}: ${warnings.length} warnings ${JSON.stringify(byRule)}\n`);
    }
    expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  });
});
