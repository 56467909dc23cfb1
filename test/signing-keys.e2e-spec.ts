import { spawnSync } from 'node:child_process';
import { createHmac, createPublicKey, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { AuthErrors } from '../src/common/auth.errors';
import { SigningKeys } from '../src/signing-keys/signing-keys.service';
import { createTestDatabase, DATABASES, DatabaseKind, sql, TestDatabase } from './support/databases';
import { expectProblem, newAccount, waitUntil } from './support/fixtures';
import { runToExit } from './support/standalone';
import { startTestApp, TestApp, TEST_JWT_SECRET } from './support/test-app';

const AUTH = '/api/v1/auth';
const ISSUER = 'https://auth.example.test';
const AUDIENCE = 'https://api.example.test';
const CLI_JS = join(__dirname, '..', 'dist', 'src', 'app', 'cli.js');

interface Listening {
  t: TestApp;
  baseUrl: string;
}

async function listening(database: TestDatabase, env: Record<string, string>, auth = {}): Promise<Listening> {
  const t = await startTestApp({ adapter: 'fastify', databaseUrl: database.url, env, auth });
  await t.app.listen(0, '127.0.0.1');
  return { t, baseUrl: (await t.app.getUrl()).replace('[::1]', '127.0.0.1') };
}

const b64 = (value: object | Buffer) => (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');

/** A JWS made by hand, so the test can put anything in the header. */
function handMade(header: object, payload: object, signature: (input: string) => Buffer): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signature(input).toString('base64url')}`;
}

function payloadOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

async function signUp(app: Listening): Promise<{ token: string; refresh: string }> {
  const res = await app.t.http().post(`${AUTH}/signup`).send(newAccount()).expect(201);
  return { token: res.body.access_token, refresh: res.body.refresh_token };
}

const me = (app: Listening, token: string) => app.t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' });

function cli(database: TestDatabase, ...args: string[]): { status: number | null; out: string } {
  const cwd = mkdtempSync(join(tmpdir(), 'auth-cli-'));
  try {
    const result = spawnSync(process.execPath, [CLI_JS, ...args], {
      cwd,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, DATABASE_URL: database.url, JWT_SECRET: TEST_JWT_SECRET, JWT_ALGORITHM: 'EdDSA' },
      timeout: 30_000,
    });
    return { status: result.status, out: (result.stdout + result.stderr).trim() };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

describe.each(DATABASES.flatMap((db) => (['EdDSA', 'ES256'] as const).map((alg) => [db, alg] as [DatabaseKind, 'EdDSA' | 'ES256'])))(
  'signing keys on %s with %s',
  (databaseKind, algorithm) => {
    const env = { JWT_ALGORITHM: algorithm, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE };
    let database: TestDatabase;
    let app: Listening;

    beforeAll(async () => {
      database = await createTestDatabase(databaseKind);
      app = await listening(database, env);
    });

    afterAll(async () => {
      await app?.t.close();
      await database?.drop();
    });

    it('publishes its key at /jwks and /.well-known/jwks.json, cacheable, and names it in every token', async () => {
      const res = await app.t.http().get(`${AUTH}/jwks`).expect(200);
      expect(res.headers['cache-control']).toBe('public, max-age=300');
      expect(res.body.keys).toHaveLength(1);
      const [jwk] = res.body.keys;
      expect(jwk).toMatchObject({ kid: expect.any(String), alg: algorithm, use: 'sig', kty: algorithm === 'EdDSA' ? 'OKP' : 'EC' });
      expect(jwk).not.toHaveProperty('d');
      const wellKnown = await app.t.http().get('/.well-known/jwks.json').expect(200);
      expect(wellKnown.headers['cache-control']).toBe('public, max-age=300');
      expect(wellKnown.body).toEqual(res.body);

      const { token } = await signUp(app);
      expect(decodeProtectedHeader(token)).toEqual({ alg: algorithm, typ: 'JWT', kid: jwk.kid });
    });

    it('issues tokens another service verifies with jose from the JWKS alone, iss and aud included', async () => {
      const { token } = await signUp(app);
      const keySet = createRemoteJWKSet(new URL(`${app.baseUrl}${AUTH}/jwks`));
      const { payload } = await jwtVerify(token, keySet, { issuer: ISSUER, audience: AUDIENCE, algorithms: [algorithm] });
      expect(payload).toMatchObject({ typ: 'access', iss: ISSUER, aud: AUDIENCE, sub: expect.any(String), sid: expect.any(String) });
      await me(app, token).expect(200);
    });

    it('keeps the private key encrypted at rest', async () => {
      const [row] = (await sql(database, 'SELECT private_key FROM signing_keys')) as { private_key: string }[];
      expect(row.private_key).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(row.private_key).not.toContain('BEGIN');
    });

    describe('refuses', () => {
      let valid: string;
      let kid: string;
      let claims: Record<string, unknown>;
      beforeAll(async () => {
        valid = (await signUp(app)).token;
        kid = decodeProtectedHeader(valid).kid!;
        claims = payloadOf(valid);
      });
      const refused = async (token: string) => expectProblem(await me(app, token), 401, AuthErrors.INVALID_ACCESS_TOKEN);

      it('alg none', async () => {
        await refused(`${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(claims)}.`);
        await refused(handMade({ alg: 'none', kid }, claims, () => Buffer.alloc(0)));
      });

      it('HS256 signed with the public key, in every form a confused verifier might use', async () => {
        const [jwk] = (await app.t.http().get(`${AUTH}/jwks`)).body.keys;
        const publicKey = createPublicKey({ key: jwk, format: 'jwk' });
        const forms = [
          publicKey.export({ format: 'pem', type: 'spki' }),
          publicKey.export({ format: 'der', type: 'spki' }),
          JSON.stringify(jwk),
          Buffer.from(jwk.x, 'base64url'),
        ];
        for (const secret of forms) {
          await refused(handMade({ alg: 'HS256', typ: 'JWT', kid }, claims, (input) => createHmac('sha256', secret).update(input).digest()));
        }
      });

      it('a kid that is unknown, missing, or of another algorithm', async () => {
        const [, , signature] = valid.split('.');
        const resign = (header: object) => `${b64(header)}.${valid.split('.')[1]}.${signature}`;
        await refused(resign({ alg: algorithm, typ: 'JWT', kid: 'no-such-key' }));
        await refused(resign({ alg: algorithm, typ: 'JWT' }));
        const other = algorithm === 'EdDSA' ? 'ES256' : 'EdDSA';
        await refused(resign({ alg: other, typ: 'JWT', kid }));
        // A key of the attacker's, signing correctly, under our kid.
        const attacker = algorithm === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
        await refused(
          handMade({ alg: algorithm, typ: 'JWT', kid }, claims, (input) =>
            algorithm === 'EdDSA'
              ? cryptoSign(null, Buffer.from(input), attacker.privateKey)
              : cryptoSign('sha256', Buffer.from(input), { key: attacker.privateKey, dsaEncoding: 'ieee-p1363' }),
          ),
        );
      });

      it('a token of the same keys with another issuer or audience', async () => {
        for (const [name, value] of [['JWT_ISSUER', 'https://elsewhere.example.test'], ['JWT_AUDIENCE', 'https://other-api.example.test']]) {
          const sibling = await listening(database, { ...env, [name]: value });
          try {
            const { token } = await signUp(sibling);
            expect(decodeProtectedHeader(token).kid).toBe(kid); // same database, same key
            await me(sibling, token).expect(200);
            await refused(token);
          } finally {
            await sibling.t.close();
          }
        }
      });
    });

    it('stops start-up with one line when JWT_SECRET no longer decrypts the stored keys', () => {
      const cwd = mkdtempSync(join(tmpdir(), 'auth-keys-'));
      try {
        const result = runToExit({ DATABASE_URL: database.url, JWT_ALGORITHM: algorithm, JWT_SECRET: 'another-secret-that-is-at-least-32-bytes!!' }, cwd);
        expect(result.status).toBe(1);
        const lines = result.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(/^Configuration error: AuthModule: jwtSecret \(JWT_SECRET\) does not decrypt the stored signing key \S+: /);
      } finally {
        rmSync(cwd, { recursive: true, force: true });
      }
    });
  },
);

describe('rotation on schedule', () => {
  let database: TestDatabase;
  let app: Listening;

  beforeAll(async () => {
    database = await createTestDatabase('sqlite');
    app = await listening(database, { JWT_ALGORITHM: 'EdDSA' }, { signingKeys: { rotationDays: 1, publishDelaySeconds: 60, refreshSeconds: 1 } });
  });

  afterAll(async () => {
    await app?.t.close();
    await database?.drop();
  });

  const kids = async () => ((await app.t.http().get(`${AUTH}/jwks`).expect(200)).body.keys as { kid: string }[]).map((key) => key.kid);

  it('makes the next key when the current one is due, publishes it first, and signs with it after the delay', async () => {
    const [first] = await kids();
    expect(await kids()).toEqual([first]);
    // A day less the publish delay on: the next key is due, published, not yet signing.
    app.t.advanceClock(24 * 3600 * 1000 - 60 * 1000);
    await waitUntil('the next key is published', async () => (await kids()).length === 2, 3000);
    const next = (await kids()).find((kid) => kid !== first)!;
    expect(decodeProtectedHeader((await signUp(app)).token).kid).toBe(first);
    expect(await sql(database, 'SELECT kid FROM signing_keys')).toHaveLength(2); // made once, not on every reload
    app.t.advanceClock(61 * 1000);
    const { token } = await signUp(app);
    expect(decodeProtectedHeader(token).kid).toBe(next);
    await me(app, token).expect(200);
  });
});

describe('HS256 (the default)', () => {
  let database: TestDatabase;
  let app: Listening;

  beforeAll(async () => {
    database = await createTestDatabase('sqlite');
    app = await listening(database, {});
  });

  afterAll(async () => {
    await app?.t.close();
    await database?.drop();
  });

  it('has no public keys to publish: /jwks and /.well-known/jwks.json answer 404', async () => {
    expectProblem(await app.t.http().get(`${AUTH}/jwks`), 404, AuthErrors.NO_PUBLIC_KEYS);
    expectProblem(await app.t.http().get('/.well-known/jwks.json'), 404, AuthErrors.NO_PUBLIC_KEYS);
  });

  it('names the secret by a fingerprint in every token, and stores nothing', async () => {
    const { token } = await signUp(app);
    const header = decodeProtectedHeader(token);
    expect(header).toEqual({ alg: 'HS256', typ: 'JWT', kid: expect.stringMatching(/^hs256-[\w-]{16}$/) });
    expect(TEST_JWT_SECRET).not.toContain(header.kid!.slice(6));
    expect(await sql(database, 'SELECT kid FROM signing_keys')).toEqual([]);
    await me(app, token).expect(200);
  });
});

/** Rotation, several instances and revocation: on PostgreSQL, where instances really run side by side. */
describe('rotation across instances on one database', () => {
  const env = { JWT_ALGORITHM: 'EdDSA' };
  const fast = { signingKeys: { publishDelaySeconds: 2, refreshSeconds: 1 } };
  let database: TestDatabase;
  let a: Listening;
  let b: Listening;

  beforeAll(async () => {
    database = await createTestDatabase(DATABASES.includes('postgres') ? 'postgres' : 'sqlite');
    // The schema first (an HS256 app makes no key): two processes running migrations at once race on
    // CREATE TABLE, which is a deployment's business (run migrations once), not the keys'.
    await (await startTestApp({ adapter: 'fastify', databaseUrl: database.url })).close();
    // Started together on a database with no key: they make one key between them, not one each.
    [a, b] = await Promise.all([listening(database, env, fast), listening(database, env, fast)]);
  });

  afterAll(async () => {
    await a?.t.close();
    await b?.t.close();
    await database?.drop();
  });

  const jwksOf = async (app: Listening): Promise<string[]> =>
    ((await app.t.http().get(`${AUTH}/jwks`).expect(200)).body.keys as { kid: string }[]).map((key) => key.kid);
  const kidOf = (token: string) => decodeProtectedHeader(token).kid!;

  it('share one key, and each accepts the other’s tokens', async () => {
    expect(await sql(database, 'SELECT kid FROM signing_keys')).toHaveLength(1);
    const fromA = await signUp(a);
    const fromB = await signUp(b);
    expect(kidOf(fromA.token)).toBe(kidOf(fromB.token));
    await me(b, fromA.token).expect(200);
    await me(a, fromB.token).expect(200);
  });

  it('rotate without a 401: the new key is published on every instance before any token uses it', async () => {
    const old = (await signUp(a)).token;
    const oldKid = kidOf(old);
    const failures: number[] = [];
    let flowing = true;
    // Requests keep flowing through both instances with the token in hand and with fresh ones.
    const traffic = (async () => {
      while (flowing) {
        const fresh = (await signUp(a)).token;
        for (const [app, token] of [[a, old], [b, old], [b, fresh], [a, fresh]] as const) {
          const res = await me(app, token);
          if (res.status !== 200) failures.push(res.status);
        }
      }
    })();

    const { kid: newKid, activatesAt } = await a.t.app.get(SigningKeys).rotate();
    expect(newKid).not.toBe(oldKid);
    await waitUntil('instance B publishes the new key', async () => (await jwksOf(b)).includes(newKid), 3000);
    const publishedOnB = Date.now();
    expect(publishedOnB).toBeLessThan(activatesAt.getTime());
    expect(kidOf((await signUp(a)).token)).toBe(oldKid); // published, not yet signing
    expect(kidOf((await signUp(b)).token)).toBe(oldKid);

    await waitUntil('the new key signs', async () => kidOf((await signUp(b)).token) === newKid, 5000);
    expect(Date.now()).toBeGreaterThanOrEqual(activatesAt.getTime());
    // The retired key stays published while tokens it signed can be live.
    expect(await jwksOf(a)).toEqual(expect.arrayContaining([oldKid, newKid]));
    await me(b, old).expect(200);
    flowing = false;
    await traffic;
    expect(failures).toEqual([]);

    // Once the last token it signed has expired (the access token lifetime after the new key took over),
    // it is withdrawn, and a token naming it is refused even where its own exp has not come yet.
    for (const app of [a, b]) app.t.advanceClock(31 * 60 * 1000);
    await waitUntil('the retired key is withdrawn everywhere', async () => !(await jwksOf(a)).includes(oldKid) && !(await jwksOf(b)).includes(oldKid), 3000);
    expectProblem(await me(b, old), 401, AuthErrors.INVALID_ACCESS_TOKEN);
  });

  it('revoke from the command line: every instance refuses the key’s tokens, and a new key signs at once', async () => {
    const before = (await signUp(b)).token;
    const kid = kidOf(before);
    await me(a, before).expect(200);

    const revoked = cli(database, 'keys:revoke', kid);
    expect(revoked).toEqual({ status: 0, out: expect.stringContaining(`signing key ${kid} revoked`) });
    for (const app of [a, b]) {
      await waitUntil('the revocation reaches the instance', async () => (await me(app, before)).status === 401, 3000);
      expectProblem(await me(app, before), 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expect(await jwksOf(app)).not.toContain(kid);
    }
    const after = (await signUp(a)).token;
    expect(kidOf(after)).not.toBe(kid);
    await waitUntil('the replacement key verifies on B', async () => (await me(b, after)).status === 200, 3000);

    expect(cli(database, 'keys:revoke', kid)).toEqual({ status: 1, out: `no live signing key ${kid}` });
    expect(cli(database, 'keys:revoke')).toMatchObject({ status: 1, out: expect.stringContaining('keys:revoke needs a key id') });
    expect(cli(database, 'bogus')).toEqual({ status: 1, out: 'usage: npm run cli -- keys:rotate | keys:revoke <kid> | grant-role <email> <role> | revoke-role <email> <role>' });
  });

  it('rotate from the command line', async () => {
    const rotated = cli(database, 'keys:rotate');
    expect(rotated.status).toBe(0);
    const [, kid] = /^signing key (\S+) is published now and signs from /.exec(rotated.out) ?? [];
    expect(kid).toBeDefined();
    await waitUntil('both instances publish it', async () => (await jwksOf(a)).includes(kid) && (await jwksOf(b)).includes(kid), 3000);
  });
});
