import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN_JS, runToExit, startStandalone } from './support/standalone';

const JWT_SECRET = 'standalone-test-secret-of-at-least-32-bytes';

/** The built standalone app as a user runs it: `npm start` on a fresh folder, embedded defaults. */
describe('standalone app', () => {
  let cwd: string;

  beforeAll(() => {
    if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run npm run build (npm test does)`);
  });

  beforeEach(() => {
    cwd = mkdtempSync(join(tmpdir(), 'auth-standalone-'));
  });

  afterEach(() => rmSync(cwd, { recursive: true, force: true }));

  describe('refuses bad configuration with one line naming the variable', () => {
    it.each([
      [{ PORT: 'eighty' }, 'PORT'],
      [{ DATABASE_URL: 'mysql://localhost/db' }, 'DATABASE_URL'],
      [{ JWT_SECRET: 'too-short' }, 'JWT_SECRET'],
      [{ NODE_ENV: 'production' }, 'JWT_SECRET'],
      [{ ACCESS_TOKEN_EXPIRE_MINUTES: '0' }, 'ACCESS_TOKEN_EXPIRE_MINUTES'],
      [{ SMTP_URL: 'http://mail.example.com' }, 'SMTP_URL'],
      [{ REDIS_URL: 'not a url' }, 'REDIS_URL'],
      [{ TRUST_PROXY: 'true' }, 'TRUST_PROXY'],
      [{ PASSWORD_RESET_URL: 'ftp://x' }, 'PASSWORD_RESET_URL'],
      [{ RATE_LIMIT_PER_MINUTE: '-1' }, 'RATE_LIMIT_PER_MINUTE'],
      [{ EMAIL_VERIFICATION_URL: 'ftp://x' }, 'EMAIL_VERIFICATION_URL'],
      [{ REQUIRE_VERIFIED_EMAIL: 'yes' }, 'REQUIRE_VERIFIED_EMAIL'],
      [{ MAIL_MAX_ATTEMPTS: '0' }, 'MAIL_MAX_ATTEMPTS'],
    ])('%j -> names %s', (env, variable) => {
      const result = runToExit(env, cwd);
      expect(result.status).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(variable);
      expect(result.stdout).toBe('');
      expect(existsSync(join(cwd, 'data'))).toBe(false);
    });
  });

  it('starts on the embedded defaults: migrations, health, docs, and mail as .eml files', async () => {
    const app = await startStandalone({ JWT_SECRET }, cwd);
    try {
      expect(await (await fetch(`${app.baseUrl}/health/ready`)).json()).toEqual({ status: 'ok', checks: { database: 'up' } });
      const docsPage = await fetch(`${app.baseUrl}/docs`);
      expect(docsPage.status).toBe(200);
      expect(await docsPage.text()).toContain('swagger');
      const openapi = (await (await fetch(`${app.baseUrl}/docs-json`)).json()) as { paths: Record<string, object> };
      const routes = [
        'signup',
        'signin',
        'forgot-password',
        'reset-password',
        'change-password',
        'me',
        'verify-email',
        'resend-verification',
        'refresh',
        'signout',
        'signout-all',
        'sessions',
        'sessions/{id}',
      ];
      for (const route of routes) {
        expect(openapi.paths).toHaveProperty([`/api/v1/auth/${route}`]);
      }
      expect(openapi.paths['/api/v1/auth/refresh']).toHaveProperty(['post', 'responses', '401']);
      expect(openapi.paths['/api/v1/auth/sessions/{id}']).toHaveProperty(['delete', 'responses', '404']);
      const schemas = (openapi as unknown as { components: { schemas: Record<string, { properties: object }> } }).components.schemas;
      expect(Object.keys(schemas.TokenResponse.properties)).toEqual(expect.arrayContaining(['refresh_token', 'refresh_expires_in']));
      expect(Object.keys(schemas.SessionResponse.properties).sort()).toEqual(
        ['created_at', 'current', 'id', 'ip', 'last_used_at', 'user_agent'],
      );
      expect(openapi.paths['/api/v1/auth/signup']).toHaveProperty(['post', 'responses', '201']);
      expect(openapi.paths['/api/v1/auth/signup']).toHaveProperty(['post', 'responses', '400']);
      expect(openapi.paths['/api/v1/auth/signup']).toHaveProperty(['post', 'responses', '422']);
      expect(openapi.paths['/api/v1/auth/me']).toHaveProperty(['get', 'responses', '401']);

      const account = { email: 'eve@example.com', username: 'eve', password: 'standalone password' };
      const signup = await fetch(`${app.baseUrl}/api/v1/auth/signup`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(account),
      });
      expect(signup.status).toBe(201);
      const forgot = await fetch(`${app.baseUrl}/api/v1/auth/forgot-password`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: account.email }),
      });
      expect(forgot.status).toBe(200);

      const mailDir = join(cwd, 'data', 'mail');
      const deadline = Date.now() + 5000;
      while ((!existsSync(mailDir) || readdirSync(mailDir).length < 2) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const files = readdirSync(mailDir).filter((f) => f.endsWith('.eml'));
      expect(files).toHaveLength(2);
      const mails = files.map((f) => readFileSync(join(mailDir, f), 'utf8').replace(/=\r?\n/g, ''));
      const reset = mails.find((m) => m.includes('Subject: Reset'));
      expect(reset).toMatch(/http:\/\/localhost:3000\/reset-password\?token=3D[\w-]{43}/);
      const welcome = mails.find((m) => m.includes('Subject: Welcome'));
      expect(welcome).toMatch(/http:\/\/localhost:3000\/verify-email\?token=3D[\w-]{43}/);
      for (const file of files) expect(app.output()).toContain(file);
      expect(app.output()).not.toMatch(/token=|reset-password\?/);
      expect(app.output()).not.toContain(account.password);
    } finally {
      await app.stop();
    }

    // Restarted on the same folder: migrations are not applied twice and the account is still there.
    const again = await startStandalone({ JWT_SECRET }, cwd);
    try {
      const signin = await fetch(`${again.baseUrl}/api/v1/auth/signin`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email: 'eve@example.com', password: 'standalone password' }),
      });
      expect(signin.status).toBe(200);
    } finally {
      await again.stop();
    }
  });

  it('warns when JWT_SECRET is missing outside production, and still starts', async () => {
    const app = await startStandalone({}, cwd);
    try {
      expect(app.output()).toMatch(/JWT_SECRET is not set/);
    } finally {
      await app.stop();
    }
  });

  it('warns at start-up when mail falls back to files in production, and not otherwise', async () => {
    const production = await startStandalone({ NODE_ENV: 'production', JWT_SECRET: 'p'.repeat(40) }, cwd);
    const development = await startStandalone({}, cwd);
    try {
      expect(production.output()).toMatch(/SMTP_URL is not set with NODE_ENV=production: mail is written as \.eml files/);
      expect(development.output()).not.toMatch(/SMTP_URL is not set/);
    } finally {
      await production.stop();
      await development.stop();
    }
  });

  it('sizes the thread pool for its hashes, so it does not warn about it', async () => {
    const app = await startStandalone({}, cwd);
    try {
      expect(app.output()).not.toMatch(/thread pool has/);
    } finally {
      await app.stop();
    }
  });
});
