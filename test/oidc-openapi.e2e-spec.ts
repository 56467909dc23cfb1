import type { OpenAPIV3 } from 'openapi-types';
import { createTestDatabase, DATABASES, sql, TestDatabase } from './support/databases';
import { signUp } from './support/fixtures';
import { DocumentChecker } from './support/openapi-validation';
import { authorizeThroughIdp, Browser, callbackUrl, exchange, oidcEnv, signInThroughIdp, TestIdp, visitCallback } from './support/oidc';
import { startTestApp, TestApp } from './support/test-app';

const AUTH = '/api/v1/auth';
const op = (method: string, route: string) => `${method} ${AUTH}/${route}`;
const SETTINGS = 'https://app.example.test/settings';
/**
 * Statuses every route of its kind documents, proven for all routes by test/openapi.e2e-spec.ts on an app
 * without providers (the same decorators); here only what the OIDC routes add is driven.
 */
const PROVEN_ELSEWHERE = /-> (413|415|429|500|503)$/;

describe('the OpenAPI document matches the OIDC routes', () => {
  let database: TestDatabase;
  let idp: TestIdp;
  let t: TestApp;
  let doc: DocumentChecker;

  beforeAll(async () => {
    idp = await TestIdp.start([callbackUrl('test')]);
    database = await createTestDatabase(DATABASES[0]);
    t = await startTestApp({
      adapter: 'fastify',
      databaseUrl: database.url,
      env: oidcEnv(idp.issuer, {
        OIDC_PROVIDERS: 'test,down',
        OIDC_DOWN_ISSUER: 'http://127.0.0.1:9',
        OIDC_DOWN_CLIENT_ID: 'x',
        OIDC_DOWN_CLIENT_SECRET: 'y',
      }),
    });
    doc = new DocumentChecker((await t.http().get('/docs-json').expect(200)).body as OpenAPIV3.Document);
  });

  afterAll(async () => {
    await t?.close();
    await database?.drop();
    await idp?.stop();
  });

  it('documents every response of authorize, callback, exchange, link and identities', async () => {
    const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
    const authorize = op('GET', 'oidc/{name}/authorize');
    const redirect = encodeURIComponent('https://app.example.test/auth/done');
    expect(doc.check(authorize, await t.http().get(`${AUTH}/oidc/test/authorize?redirect_uri=${redirect}`)).status).toBe(302);
    expect(doc.check(authorize, await t.http().get(`${AUTH}/oidc/test/authorize?redirect_uri=https%3A%2F%2Fevil.test`)).status).toBe(400);
    expect(doc.check(authorize, await t.http().get(`${AUTH}/oidc/nope/authorize?redirect_uri=${redirect}`)).status).toBe(404);
    expect(doc.check(authorize, await t.http().get(`${AUTH}/oidc/test/authorize`)).status).toBe(422);
    expect(doc.check(authorize, await t.http().get(`${AUTH}/oidc/down/authorize?redirect_uri=${redirect}`)).status).toBe(503);

    const callback = op('GET', 'oidc/{name}/callback');
    const exchangeKey = op('POST', 'oidc/exchange');
    await idp.addAccount({ id: 'doc-user', email: 'doc-user@idp.test', email_verified: true });
    const browser = new Browser();
    const back = await authorizeThroughIdp(t, browser, idp, { loginHint: 'doc-user' });
    const path = `${back.pathname}${back.search}`;
    const visited = doc.check(callback, await t.http().get(path).set('Cookie', browser.cookieFor(path)));
    expect(visited.status).toBe(302);
    expect(doc.check(callback, await t.http().get(path)).status).toBe(302);
    expect(doc.check(callback, await t.http().get(`${AUTH}/oidc/test/callback?code=x`)).status).toBe(400);
    expect(doc.check(callback, await t.http().get(`${AUTH}/oidc/nope/callback?code=x&state=y`)).status).toBe(404);
    browser.takeAppCookies(visited.headers['set-cookie']);
    const code = new URL(visited.headers.location).searchParams.get('code')!;
    const signedIn = doc.check(exchangeKey, await exchange(t, browser, code));
    expect(signedIn.status).toBe(200);
    expect(doc.check(exchangeKey, await exchange(t, browser, code)).status).toBe(400);
    expect(doc.check(exchangeKey, await exchange(t, browser, 42 as unknown as string)).status).toBe(422);
    expect(doc.check(exchangeKey, await t.http().post(`${AUTH}/oidc/exchange`).set('Content-Type', 'application/json').send('{"code":')).status).toBe(400);
    const token = signedIn.body.access_token as string;

    const locked = new Browser();
    const lockedOutcome = await signInThroughIdp(t, locked, idp, 'doc-user');
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [false, signedIn.body.user.id]);
    expect(doc.check(exchangeKey, await exchange(t, locked, lockedOutcome.code!)).status).toBe(403);
    await sql(database, 'UPDATE users SET is_active = $1 WHERE id = $2', [true, signedIn.body.user.id]);

    const identities = op('GET', 'identities');
    const listed = doc.check(identities, await t.http().get(`${AUTH}/identities`).set(bearer(token)));
    expect(listed.status).toBe(200);
    expect(doc.check(identities, await t.http().get(`${AUTH}/identities`)).status).toBe(401);
    const unlink = op('DELETE', 'identities/{id}');
    expect(doc.check(unlink, await t.http().delete(`${AUTH}/identities/${listed.body[0].id}`).set(bearer(token))).status).toBe(400);
    expect(doc.check(unlink, await t.http().delete(`${AUTH}/identities/999999`).set(bearer(token))).status).toBe(404);
    expect(doc.check(unlink, await t.http().delete(`${AUTH}/identities/1`)).status).toBe(401);

    const link = op('POST', 'oidc/{name}/link');
    const owner = await signUp(() => t.http());
    const started = doc.check(link, await t.http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS, login_hint: 'doc-linked' }));
    expect(started.status).toBe(200);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: 'https://evil.test' })).status).toBe(400);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/nope/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS })).status).toBe(404);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/down/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS })).status).toBe(503);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({})).status).toBe(422);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/test/link`).send({ redirect_uri: SETTINGS })).status).toBe(401);
    await idp.addAccount({ id: 'doc-linked', email: 'doc-linked@idp.test', email_verified: true });
    const linkBrowser = new Browser();
    linkBrowser.takeAppCookies(started.headers['set-cookie']);
    expect((await visitCallback(t, linkBrowser, await linkBrowser.throughIdp(started.body.authorize_url, idp.issuer))).linked).toBe('test');
    const [linked] = (await t.http().get(`${AUTH}/identities`).set(bearer(owner.token))).body;
    expect(doc.check(unlink, await t.http().delete(`${AUTH}/identities/${linked.id}`).set(bearer(owner.token))).status).toBe(200);
    t.advanceClock(6 * 60_000);
    expect(doc.check(link, await t.http().post(`${AUTH}/oidc/test/link`).set(bearer(owner.token)).send({ redirect_uri: SETTINGS })).status).toBe(403);

    const user = op('GET', 'me');
    expect(doc.check(user, await t.http().get(`${AUTH}/me`).set(bearer(token))).status).toBe(200);

    expect(doc.mismatches).toEqual([]);
    const oidcOperations = doc.operations.filter((key) => key.includes('/oidc/') || key.includes('/identities'));
    expect(oidcOperations).toHaveLength(6);
    const unexercised = doc.unexercisedStatuses().filter((status) => oidcOperations.some((key) => status.startsWith(`${key} ->`)));
    // Bearer routes also document 403 (inactive) and 404 (user not found) for the token's user: the guard's, proven elsewhere.
    const guard = (status: string) => /identities(\/\{id\})? -> (403|404)$/.test(status);
    expect(unexercised.filter((status) => !PROVEN_ELSEWHERE.test(status) && !guard(status))).toEqual([]);
  });
});
