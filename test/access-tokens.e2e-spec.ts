import jwt from 'jsonwebtoken';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuthErrors } from '../src/common/auth.errors';
import { DATABASES } from './support/databases';
import { expectProblem, signUp, SignedUp } from './support/fixtures';
import { tokenFromMail } from './support/smtp';
import { matrix, TEST_JWT_SECRET, useTestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const ISSUER = 'auth-service';
const AUDIENCE = 'auth-service';

type Claims = Record<string, unknown>;

function base64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

/** The session id the tests' forged tokens carry: a live session of the test user (set in beforeAll). */
let liveSessionId: string;

/** The claims of a genuine access token of this user, changed by `overrides`; `omit` drops claims. */
function claimsFor(userId: number, overrides: Claims = {}, omit: string[] = []): Claims {
  const now = Math.floor(Date.now() / 1000);
  const claims: Claims = {
    sub: String(userId),
    typ: 'access',
    ver: 0,
    sid: liveSessionId,
    iss: ISSUER,
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    ...overrides,
  };
  for (const name of omit) delete claims[name];
  return claims;
}

function forge(
  claims: Claims,
  options: { key?: jwt.Secret; algorithm?: jwt.Algorithm; header?: Record<string, unknown> } = {},
): string {
  const algorithm = options.algorithm ?? 'HS256';
  return jwt.sign(claims, options.key ?? TEST_JWT_SECRET, {
    algorithm,
    header: { alg: algorithm, typ: 'JWT', ...options.header } as jwt.JwtHeader,
  });
}

/** A token with no signature at all, whatever its header claims. */
function unsigned(claims: Claims, alg: string, signature = ''): string {
  return `${base64url({ alg, typ: 'JWT' })}.${base64url(claims)}.${signature}`;
}

/** A web server that counts every request: a token pointing at it must never make the app call it. */
class KeyServer {
  hits = 0;
  private server: Server;

  constructor(private readonly body: string) {}

  get base(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((_req, res) => {
      this.hits += 1;
      res.setHeader('Content-Type', 'application/json');
      res.end(this.body);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe.each(matrix(DATABASES))('access tokens on %s with %s', (databaseKind, adapter) => {
  const { t, smtp } = useTestApp(databaseKind, { adapter, env: { ACCESS_TOKEN_EXPIRE_MINUTES: '5' } });
  let user: SignedUp;

  const me = (token: string) => t.http().get(`${AUTH}/me`).auth(token, { type: 'bearer' });

  /** 401 problem with the bearer challenge, and no user data. */
  async function expectRejected(token: string, detail: string = AuthErrors.INVALID_ACCESS_TOKEN): Promise<void> {
    const res = await me(token);
    expectProblem(res, 401, detail);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(JSON.stringify(res.body)).not.toContain(user.account.email);
  }

  beforeAll(async () => {
    user = await signUp(t.http);
    liveSessionId = (jwt.decode(user.token) as jwt.JwtPayload).sid as string;
  });

  describe('issued tokens', () => {
    it('are HS256 JWTs whose sub is the user id as a string, living ACCESS_TOKEN_EXPIRE_MINUTES', async () => {
      const signup = await signUp(t.http);
      const signin = await t.http().post(`${AUTH}/signin`).send({ email: signup.account.email, password: signup.account.password }).expect(200);
      expect(signin.body.expires_in).toBe(300);

      for (const token of [signup.token, signin.body.access_token as string]) {
        const decoded = jwt.decode(token, { complete: true })!;
        expect(decoded.header.alg).toBe('HS256');
        const payload = decoded.payload as jwt.JwtPayload;
        expect(payload).toMatchObject({ sub: String(signup.userId), typ: 'access', iss: ISSUER, aud: AUDIENCE });
        expect(payload.sid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
        expect(typeof payload.sub).toBe('string');
        expect(payload.exp! - payload.iat!).toBe(5 * 60);
        expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(60);
        // Verifies with the configured key and nothing else: what the app hands out is what it checks.
        expect(() => jwt.verify(token, TEST_JWT_SECRET, { algorithms: ['HS256'], issuer: ISSUER, audience: AUDIENCE })).not.toThrow();
      }
    });

    it('sign-up also answers expires_in 300', async () => {
      const res = await t.http().post(`${AUTH}/signup`).send({ email: `ttl-${user.account.email}`, username: `ttl${user.account.username}`, password: 'a fine long password' }).expect(201);
      expect(res.body.expires_in).toBe(300);
    });
  });

  describe('GET /me with a token made by the test', () => {
    it('accepts a correctly forged token (proves the forging below is right)', async () => {
      const res = await me(forge(claimsFor(user.userId))).expect(200);
      expect(res.body).toMatchObject({ id: user.userId, email: user.account.email });
    });

    it.each(['none', 'None', 'nOnE', 'NONE'])('rejects an unsigned token with alg %s', async (alg) => {
      await expectRejected(unsigned(claimsFor(user.userId), alg));
    });

    it('rejects alg none even when a genuine signature is appended', async () => {
      const genuineSignature = forge(claimsFor(user.userId)).split('.')[2];
      await expectRejected(unsigned(claimsFor(user.userId), 'none', genuineSignature));
    });

    it.each(['HS384', 'HS512'] as const)('rejects %s even with the right key', async (algorithm) => {
      await expectRejected(forge(claimsFor(user.userId), { algorithm }));
    });

    it('rejects a token signed with another key', async () => {
      await expectRejected(forge(claimsFor(user.userId), { key: randomBytes(48).toString('base64') }));
      await expectRejected(forge(claimsFor(user.userId), { key: `${TEST_JWT_SECRET}x` }));
    });

    it('rejects a token whose signature was tampered with', async () => {
      const [header, payload, signature] = forge(claimsFor(user.userId)).split('.');
      const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);
      await expectRejected(`${header}.${payload}.${flipped}`);
      // A genuine signature over other claims does not cover these ones.
      const otherPayload = base64url(claimsFor(user.userId, { sub: String(user.userId + 1) }));
      await expectRejected(`${header}.${otherPayload}.${signature}`);
    });

    it.each<[string, Claims, string[]]>([
      ['a wrong iss', { iss: 'someone-else' }, []],
      ['a wrong aud', { aud: 'another-service' }, []],
      ['an aud list without this service', { aud: ['another-service', 'third-service'] }, []],
      ['no iss', {}, ['iss']],
      ['no aud', {}, ['aud']],
    ])('rejects a token with %s', async (_name, overrides, omit) => {
      await expectRejected(forge(claimsFor(user.userId, overrides, omit)));
    });

    it('rejects an expired token and one not valid yet', async () => {
      const now = Math.floor(Date.now() / 1000);
      await expectRejected(forge(claimsFor(user.userId, { iat: now - 600, exp: now - 10 })));
      await expectRejected(forge(claimsFor(user.userId, { nbf: now + 120 })));
    });

    it.each<[string, Claims, string[]]>([
      ['no typ', {}, ['typ']],
      ['typ reset', { typ: 'reset' }, []],
      ['typ refresh', { typ: 'refresh' }, []],
      ['typ Access', { typ: 'Access' }, []],
      ['no ver', {}, ['ver']],
      ['ver as a string', { ver: '0' }, []],
      ['an older ver', { ver: -1 }, []],
      ['a newer ver', { ver: 1 }, []],
      ['no sid', {}, ['sid']],
      ['a sid that is not a session id', { sid: 'x' }, []],
      ['the sid of no session', { sid: '00000000-0000-4000-8000-000000000000' }, []],
    ])('rejects a token with %s', async (_name, overrides, omit) => {
      await expectRejected(forge(claimsFor(user.userId, overrides, omit)));
    });

    it.each<[string, (id: number) => unknown]>([
      ['missing', () => undefined],
      ['empty', () => ''],
      ['non-numeric', () => 'abc'],
      ['negative', (id) => `-${id}`],
      ['zero', () => '0'],
      ['fractional', (id) => `${id}.0`],
      ['zero-padded', (id) => `0${id}`],
      ['padded with spaces', (id) => ` ${id} `],
      ['in exponent notation', (id) => `${id}e0`],
      ['a number instead of a string', (id) => id],
      ['an array', (id) => [String(id)]],
    ])('rejects a token whose sub is %s', async (_name, sub) => {
      const value = sub(user.userId);
      const claims = value === undefined ? claimsFor(user.userId, {}, ['sub']) : claimsFor(user.userId, { sub: value });
      await expectRejected(forge(claims));
    });

    it('answers 404 User not found for a well-formed sub of no user', async () => {
      expectProblem(await me(forge(claimsFor(999_999))), 404, AuthErrors.USER_NOT_FOUND);
    });

    it('answers 401, never 500, for a sub beyond the 32-bit id column', async () => {
      await expectRejected(forge(claimsFor(user.userId, { sub: '2147483648' })));
    });

    it('rejects a token without exp, which would never expire', async () => {
      await expectRejected(forge(claimsFor(user.userId, {}, ['exp'])));
    });

    it('never takes the token from the query string', async () => {
      const valid = forge(claimsFor(user.userId));
      await me(valid).expect(200);
      for (const name of ['access_token', 'token']) {
        const res = await t.http().get(`${AUTH}/me?${name}=${encodeURIComponent(valid)}`);
        expectProblem(res, 401, AuthErrors.NOT_AUTHENTICATED);
        expect(res.headers['www-authenticate']).toBe('Bearer');
      }
    });

    describe('jku, jwk and x5u headers', () => {
      const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), kid: 'attacker', alg: 'RS256', use: 'sig' };
      const keyServer = new KeyServer(JSON.stringify({ keys: [attackerJwk] }));

      beforeAll(() => keyServer.start());
      afterAll(() => keyServer.stop());

      it('rejects a token signed with a key the token itself points to, and fetches nothing', async () => {
        const claims = claimsFor(user.userId);
        const attackerSecret = randomBytes(32);
        await expectRejected(forge(claims, { algorithm: 'RS256', key: attacker.privateKey, header: { kid: 'attacker', jku: `${keyServer.base}/jwks.json` } }));
        await expectRejected(forge(claims, { algorithm: 'RS256', key: attacker.privateKey, header: { jwk: attackerJwk } }));
        await expectRejected(forge(claims, { algorithm: 'RS256', key: attacker.privateKey, header: { x5u: `${keyServer.base}/cert.pem` } }));
        await expectRejected(
          forge(claims, { key: attackerSecret, header: { jwk: { kty: 'oct', k: attackerSecret.toString('base64url') }, jku: `${keyServer.base}/jwks.json` } }),
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(keyServer.hits).toBe(0);
      });

      it('rejects or ignores those headers on a genuinely signed token, and fetches nothing', async () => {
        const header = { jku: `${keyServer.base}/jwks.json`, x5u: `${keyServer.base}/cert.pem`, jwk: attackerJwk };
        const res = await me(forge(claimsFor(user.userId), { header }));
        expect([200, 401]).toContain(res.status);
        if (res.status === 401) expectProblem(res, 401, AuthErrors.INVALID_ACCESS_TOKEN);
        await new Promise((resolve) => setTimeout(resolve, 200));
        expect(keyServer.hits).toBe(0);
      });
    });
  });

  describe('tokens of one purpose never stand in for another', () => {
    it('rejects a password reset token as a bearer token, and that attempt does not use it up', async () => {
      const victim = await signUp(t.http);
      await t.http().post(`${AUTH}/forgot-password`).send({ email: victim.account.email }).expect(200);
      const resetToken = tokenFromMail(await smtp.waitFor(victim.account.email, (m) => m.subject.includes('Reset')));

      const res = await me(resetToken);
      expectProblem(res, 401, AuthErrors.INVALID_ACCESS_TOKEN);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      await t.http().post(`${AUTH}/reset-password`).send({ token: resetToken, new_password: 'the new password here' }).expect(200);
    });

    it('answers 400 Invalid or expired token for an access token posted as a reset token', async () => {
      const victim = await signUp(t.http);
      const res = await t.http().post(`${AUTH}/reset-password`).send({ token: victim.token, new_password: 'the new password here' });
      expectProblem(res, 400, AuthErrors.INVALID_RESET_TOKEN);
      await t.http().post(`${AUTH}/signin`).send({ email: victim.account.email, password: victim.account.password }).expect(200);
      await me(victim.token).expect(200);
    });
  });
});
