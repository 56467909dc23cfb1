import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import type { RawRequest } from './raw-http';
import { TEST_JWT_SECRET } from './test-app';

/**
 * fast-check arbitraries for requests to every route of the standalone server, for
 * test/fuzz.e2e-spec.ts: what a careless or hostile client can send, biased towards bodies valid enough
 * to reach the service and the database.
 */

const AUTH = '/api/v1/auth';

// ---------------------------------------------------------------------------------------------------
// JSON with keys the fuzzer chooses: `__proto__` and duplicates included, which object literals and
// JSON.stringify cannot express, and numbers JSON.parse turns into Infinity or rounds.

class Obj {
  constructor(readonly entries: [string, Json][]) {}
}
class RawNumber {
  constructor(readonly text: string) {}
}
type Json = null | boolean | number | string | RawNumber | Json[] | Obj;

function serialize(value: Json): string {
  if (value instanceof Obj) return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${serialize(v)}`).join(',')}}`;
  if (value instanceof RawNumber) return value.text;
  if (Array.isArray(value)) return `[${value.map(serialize).join(',')}]`;
  return JSON.stringify(value) ?? 'null';
}

/**
 * Stand-ins for values of the account the run keeps signed in, filled in when the request is sent (the
 * account changes as the fuzzer changes its password or ends its sessions).
 */
const WORLD = {
  email: '@@EMAIL@@',
  password: '@@PASSWORD@@',
  access: '@@ACCESS@@',
  refresh: '@@REFRESH@@',
  session: '@@SESSION@@',
  userId: '@@USERID@@',
} as const;

const NASTY = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff\ud800', '\u202e', '\ufeff', '\r\n', 'null', 'undefined', 'true', '0', '-1', 'NaN',
  '__proto__', 'constructor', '{}', '[]', "' OR '1'='1", '"; DROP TABLE users; --', "'); SELECT pg_sleep(10); --",
  '%00', '%', '../../etc/passwd', '${jndi:ldap://x/a}', '{{7*7}}', '<script>alert(1)</script>', 'ﷺ', 'ｆｕｌｌ', 'İ', 'ß', '𝔘𝔫𝔦',
  '👩‍👩‍👧‍👦', 'é'.normalize('NFD'),
];

/** Any code point, and now and then half of a surrogate pair, which JSON can carry (`"\ud800"`) and UTF-8 cannot. */
const anyChar = fc.oneof(
  { weight: 20, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)) },
);
const shortString = fc.oneof(
  fc.string({ unit: anyChar, maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.constantFrom(...NASTY),
);
const hugeString = fc
  .tuple(fc.constantFrom('a', 'é', '😀', '\u0000', ' ', '\ud800', 'ﷺ'), fc.integer({ min: 129, max: 20_000 }))
  .map(([c, n]) => c.repeat(n));
/** Around the 50- and 100-character limits, in characters that take more than one UTF-16 unit or code point. */
const nearLimit = fc
  .tuple(fc.constantFrom('a', 'é', '😀', '❤\ufe0f', 'e\u0301', 'ﷺ'), fc.integer({ min: 45, max: 130 }))
  .map(([c, n]) => c.repeat(n));
const anyString = fc.oneof({ weight: 8, arbitrary: shortString }, { weight: 1, arbitrary: nearLimit }, { weight: 1, arbitrary: hugeString });

const rawNumber = fc
  .constantFrom('1e999', '-1e999', '-0', '1e-400', '123456789012345678901234567890', '0.1e1', '2147483648', '9007199254740993')
  .map((text) => new RawNumber(text));

const protoKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__');

const { json } = fc.letrec<{ json: Json; obj: Obj }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    anyString,
    fc.integer(),
    fc.double(),
    rawNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('json'), { maxLength: 4 }),
    tie('obj'),
  ),
  obj: fc
    .array(fc.tuple(fc.oneof(protoKeys, shortString), tie('json')), { maxLength: 4 })
    .map((entries) => new Obj(entries)),
}));

// ---------------------------------------------------------------------------------------------------
// Each route's fields, with values that pass validation often enough to reach the service and the
// database, mixed with anything at all.

const oddEmail = fc.constantFrom(' Padded@Example.COM ', 'a@b.c', 'user@localhost', 'üñí@example.com', `${'a'.repeat(64)}@${'b'.repeat(63)}.com`);
/** The run's own account, or another. */
const email = fc.oneof(fc.constant(WORLD.email), fc.emailAddress(), oddEmail);
/** Mostly new addresses, so sign-ups get through. */
const newEmail = fc.oneof({ weight: 8, arbitrary: fc.emailAddress() }, { weight: 1, arbitrary: fc.constant(WORLD.email) }, { weight: 1, arbitrary: oddEmail });
const username = fc.oneof(
  { weight: 6, arbitrary: fc.stringMatching(/^[A-Za-z0-9._-]{3,24}$/) },
  { weight: 1, arbitrary: fc.constantFrom('ÜñïÇödé', 'ｆｕｌｌｗｉｄｔｈ', 'ﷺﷺ', 'ﷺﷺﷺ', 'user.name_-1') },
);
const newPassword = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: 'grapheme', minLength: 8, maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('password', 'p'.repeat(129), 'short') },
);
const opaqueToken = fc.stringMatching(/^[A-Za-z0-9_-]{43}$/);

type FieldArbitraries = Record<string, fc.Arbitrary<Json>>;

const FIELDS = {
  signup: { email: newEmail, username, password: newPassword, full_name: fc.oneof({ weight: 4, arbitrary: shortString }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: nearLimit }, { weight: 1, arbitrary: hugeString }) },
  signin: { email, password: fc.oneof(fc.constant(WORLD.password), newPassword) },
  refresh: { refresh_token: fc.oneof(fc.constant(WORLD.refresh), opaqueToken, fc.constant(null)) },
  forgot: { email },
  reset: { token: opaqueToken, new_password: newPassword },
  verify: { token: opaqueToken },
  resend: { email },
  change: { old_password: fc.oneof(fc.constant(WORLD.password), newPassword), new_password: newPassword },
  changeEmail: { new_email: newEmail, password: fc.oneof(fc.constant(WORLD.password), newPassword) },
  confirmEmailChange: { token: opaqueToken },
  deleteMe: { password: fc.oneof(fc.constant(WORLD.password), newPassword) },
} satisfies Record<string, FieldArbitraries>;

/**
 * Bodies for a route: every field valid (these reach the service and the database), every field valid
 * but one (missing or anything at all), or each field valid or not at random; extra keys, among them
 * `__proto__` and `constructor`, anywhere.
 */
function bodyFor(fields: FieldArbitraries): fc.Arbitrary<Obj> {
  const names = Object.keys(fields);
  const valid = fc.tuple(...names.map((name) => fields[name].map((value): [string, Json] => [name, value])));
  const allValid = valid;
  const oneBad = fc
    .tuple(valid, fc.nat(), fc.option(json, { freq: 4 }))
    .map(([entries, index, replacement]) =>
      entries.flatMap(([name, value], i): [string, Json][] => (i !== index % entries.length ? [[name, value]] : replacement === null ? [] : [[name, replacement]])),
    );
  const mixed = fc.tuple(
    ...names.map((name) =>
      fc.option(fc.oneof({ weight: 3, arbitrary: fields[name] }, { weight: 1, arbitrary: json }).map((value): [string, Json] => [name, value]), { freq: 6 }),
    ),
  ).map((entries) => entries.filter((entry): entry is [string, Json] => entry !== null));
  const extra = fc.oneof({ weight: 3, arbitrary: fc.constant<[string, Json][]>([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(protoKeys, shortString), json), { minLength: 1, maxLength: 2 }) });
  return fc
    .tuple(fc.oneof(allValid, oneBad, mixed), extra, fc.boolean())
    .map(([present, extraEntries, extraFirst]) => new Obj(extraFirst ? [...extraEntries, ...present] : [...present, ...extraEntries]));
}

/** How the body travels: mostly JSON of the route's shape, else anything a client could send. */
function encodedBody(shape: fc.Arbitrary<Obj>): fc.Arbitrary<Buffer | undefined> {
  return fc.oneof(
    { weight: 12, arbitrary: shape.map((obj) => Buffer.from(serialize(obj))) },
    { weight: 2, arbitrary: json.map((value) => Buffer.from(serialize(value))) },
    { weight: 1, arbitrary: fc.tuple(shape, fc.nat()).map(([obj, cut]) => Buffer.from(serialize(obj).slice(0, cut % (serialize(obj).length + 1)))) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.integer({ min: 16 * 1024 - 20, max: 40_000 }).map((n) => Buffer.from(`{"email":"${'a'.repeat(n)}@x.io"}`)) },
  );
}

// ---------------------------------------------------------------------------------------------------
// Headers.

/** What node:http allows in a header value: tab, printable ASCII and the Latin-1 upper half. */
const headerText = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff }), fc.constant(0x09)).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});

const contentType = fc.oneof(
  { weight: 24, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8', 'application/json; charset=utf-16', 'application/json; charset=latin1', 'application/json;charset=bogus',
      'APPLICATION/JSON', 'application/problem+json', 'application/vnd.api+json', 'text/plain', 'text/json',
      'application/x-www-form-urlencoded', 'multipart/form-data; boundary=xyz', 'application/octet-stream', 'application/json, text/plain',
      '*/*', '', 'application/', ';',
    ),
  },
  { weight: 1, arbitrary: headerText },
);

const base64url = (text: string) => Buffer.from(text).toString('base64url');

/** A JWT signed with the server's real secret (the fuzzer knows it), so the claims themselves get fuzzed. */
interface Forged {
  header: Obj;
  claims: Obj;
  signature: 'real' | 'none' | 'garbage';
}
const claimValue = (valid: fc.Arbitrary<Json>) => fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: json });
const forgedJwt: fc.Arbitrary<Forged> = fc.record({
  header: fc.oneof(
    { weight: 4, arbitrary: fc.constant(new Obj([['alg', 'HS256'], ['typ', 'JWT']])) },
    { weight: 1, arbitrary: fc.constantFrom('none', 'HS512', 'RS256', 'ES256', 'nOnE').map((alg) => new Obj([['alg', alg]])) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('kid', 'jku', 'jwk', 'x5u', 'crit'), json).map(([k, v]) => new Obj([['alg', 'HS256'], [k, v]])) },
  ),
  claims: fc
    .record(
      {
        sub: claimValue(fc.constantFrom(WORLD.userId, '0', '-1', '01', ' 1', '1e3', '2147483647', '2147483648', '99999999999')),
        typ: claimValue(fc.constantFrom('access', 'refresh', 'Access')),
        ver: claimValue(fc.constantFrom(0, 1, 2, -1, 1.5)),
        sid: claimValue(fc.oneof(fc.constant(WORLD.session), fc.uuid())),
        exp: claimValue(fc.constantFrom(4_102_444_800, 1_000_000, 0)),
        iss: claimValue(fc.constant('auth-service')),
        aud: claimValue(fc.constantFrom('auth-service', ['auth-service', 'other'])),
        nbf: claimValue(fc.constantFrom(0, 4_102_444_800)),
      },
      { requiredKeys: [] },
    )
    .map((claims) => new Obj(Object.entries(claims) as [string, Json][])),
  signature: fc.constantFrom('real', 'real', 'real', 'none', 'garbage'),
});

type Authorization = { kind: 'none' } | { kind: 'world'; prefix: string; suffix: string } | { kind: 'text'; value: string } | { kind: 'forged'; jwt: Forged };
const authorization: fc.Arbitrary<Authorization> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ kind: 'none' as const }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('world' as const),
      prefix: fc.oneof({ weight: 6, arbitrary: fc.constant('Bearer ') }, { weight: 1, arbitrary: fc.constantFrom('bearer ', 'BEARER ', 'Bearer  ', 'Bearer\t', 'Token ', 'Basic ', '') }),
      suffix: fc.oneof({ weight: 6, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constantFrom('x', '.', ' ', '=', ', Bearer x') }),
    }),
  },
  { weight: 2, arbitrary: headerText.map((value) => ({ kind: 'text' as const, value })) },
  { weight: 2, arbitrary: headerText.map((value) => ({ kind: 'text' as const, value: `Bearer ${value}` })) },
  { weight: 3, arbitrary: forgedJwt.map((jwt) => ({ kind: 'forged' as const, jwt })) },
);

/** Headers beyond content type and authorization: what proxies, browsers and attackers add. */
const otherHeaders = fc.oneof({ weight: 3, arbitrary: fc.constant<[string, string][]>([]) }, { weight: 1, arbitrary: fc.array(
  fc.oneof(
    fc.tuple(fc.constantFrom('x-forwarded-for', 'x-real-ip', 'forwarded', 'x-request-id', 'user-agent', 'cookie', 'origin', 'accept', 'accept-encoding', 'x-http-method-override'), headerText),
    fc.tuple(fc.constant('content-encoding'), fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-unknown', 'gzip, gzip')),
    fc.tuple(fc.constant('accept'), fc.constantFrom('application/xml', 'text/html', '*/*', 'application/problem+json')),
    fc.tuple(fc.constant('cookie'), fc.constant(`refresh_token=${WORLD.refresh}`)),
  ),
  { minLength: 1, maxLength: 3 },
) });

// ---------------------------------------------------------------------------------------------------
// Paths and methods.

/** What node:http lets into a request line unencoded. */
const pathText = fc.string({ unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 30 });
const pathSegment = fc.oneof(
  { weight: 4, arbitrary: shortString.map((s) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, 'x'))) },
  { weight: 1, arbitrary: pathText.filter((s) => !s.includes('?') && !s.includes('#')) },
  { weight: 2, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', '%C0%AE', '%00', '%2e%2e', '..', '.', '%2F', 'a'.repeat(3000), '%FF%FE', '%uD800', ';a=1', '%0d%0a') },
);
const sessionId = fc.oneof(
  fc.constant(WORLD.session),
  fc.uuid().map(String),
  fc.uuid().map((id) => id.toUpperCase()),
  fc.tuple(fc.uuid(), pathSegment).map(([id, junk]) => `${id}${junk}`),
  pathSegment,
);
const query = fc.oneof(
  { weight: 8, arbitrary: fc.constant('') },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.tuple(fc.oneof(fc.constantFrom('__proto__[admin]', 'constructor[prototype][x]', 'a[]', 'a[b][c][d][e][f]', 'token', 'refresh_token'), pathSegment), pathSegment), {
        minLength: 1,
        maxLength: 4,
      })
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
  },
);
/** Small changes to a route's own path that routers may or may not treat as the same route. */
const pathVariant = fc.oneof(
  { weight: 20, arbitrary: fc.constant((p: string) => p) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<(path: string) => string>(
      (p) => `${p}/`,
      (p) => p.replace(/[a-z]/g, (c) => c.toUpperCase()),
      (p) => `/${p}`,
      (p) => p.replace('/auth/', '/auth//'),
      (p) => p.replace('/auth/', '/auth/./'),
      (p) => p.replace('/v1/', '/v1/x/../'),
      (p) => p.replace('/auth/', '/auth/%2e/'),
    ),
  },
);
const method = (usual: string) =>
  fc.oneof({ weight: 12, arbitrary: fc.constant(usual) }, { weight: 1, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS') });

// ---------------------------------------------------------------------------------------------------
// A whole case.

export interface Case {
  route: string;
  method: string;
  path: string;
  contentType: string | null;
  authorization: Authorization;
  headers: [string, string][];
  body: Buffer | undefined;
}

function jsonCase(route: string, routeMethod: string, path: fc.Arbitrary<string>, shape: fc.Arbitrary<Obj>): fc.Arbitrary<Case> {
  return fc.record({
    route: fc.constant(route),
    method: method(routeMethod),
    path: fc.tuple(path, pathVariant, query).map(([p, variant, q]) => variant(p) + q),
    contentType: fc.option(contentType, { freq: 12 }),
    authorization,
    headers: otherHeaders,
    body: encodedBody(shape),
  });
}

const emptyObject = fc.constant(new Obj([]));
export const CASES: fc.Arbitrary<Case> = fc.oneof(
  jsonCase('signup', 'POST', fc.constant(`${AUTH}/signup`), bodyFor(FIELDS.signup)),
  jsonCase('signin', 'POST', fc.constant(`${AUTH}/signin`), bodyFor(FIELDS.signin)),
  jsonCase('refresh', 'POST', fc.constant(`${AUTH}/refresh`), bodyFor(FIELDS.refresh)),
  jsonCase('signout', 'POST', fc.constant(`${AUTH}/signout`), emptyObject),
  jsonCase('signout-all', 'POST', fc.constant(`${AUTH}/signout-all`), emptyObject),
  jsonCase('sessions', 'GET', fc.constant(`${AUTH}/sessions`), emptyObject),
  jsonCase('end-session', 'DELETE', sessionId.map((id) => `${AUTH}/sessions/${id}`), emptyObject),
  jsonCase('forgot-password', 'POST', fc.constant(`${AUTH}/forgot-password`), bodyFor(FIELDS.forgot)),
  jsonCase('reset-password', 'POST', fc.constant(`${AUTH}/reset-password`), bodyFor(FIELDS.reset)),
  jsonCase('verify-email', 'POST', fc.constant(`${AUTH}/verify-email`), bodyFor(FIELDS.verify)),
  jsonCase('resend-verification', 'POST', fc.constant(`${AUTH}/resend-verification`), bodyFor(FIELDS.resend)),
  jsonCase('change-password', 'POST', fc.constant(`${AUTH}/change-password`), bodyFor(FIELDS.change)),
  jsonCase('me', 'GET', fc.constant(`${AUTH}/me`), emptyObject),
  jsonCase('change-email', 'POST', fc.constant(`${AUTH}/change-email`), bodyFor(FIELDS.changeEmail)),
  jsonCase('confirm-email-change', 'POST', fc.constant(`${AUTH}/confirm-email-change`), bodyFor(FIELDS.confirmEmailChange)),
  jsonCase('delete-me', 'DELETE', fc.constant(`${AUTH}/me`), bodyFor(FIELDS.deleteMe)),
  jsonCase('export', 'GET', fc.constant(`${AUTH}/me/export`), emptyObject),
  jsonCase('health', 'GET', fc.constantFrom('/health/live', '/health/ready'), emptyObject),
  jsonCase('docs', 'GET', fc.constantFrom('/docs-json', '/docs'), emptyObject),
  jsonCase(
    'elsewhere',
    'GET',
    fc.array(pathSegment, { minLength: 1, maxLength: 4 }).chain((segments) =>
      fc.constantFrom(`/${segments.join('/')}`, `${AUTH}/${segments.join('/')}`, `/api/${segments.join('/')}`, `${AUTH}/sessions/${segments.join('/')}`),
    ),
    emptyObject,
  ),
);

// ---------------------------------------------------------------------------------------------------
// The account the run keeps signed in, so guarded routes get past the guard.

export interface World {
  email: string;
  password: string;
  userId: number;
  access: string;
  refresh: string;
  session: string;
}

function fill(text: string, world: World): string {
  return text
    .replaceAll(WORLD.email, world.email)
    .replaceAll(WORLD.password, world.password)
    .replaceAll(WORLD.access, world.access)
    .replaceAll(WORLD.refresh, world.refresh)
    .replaceAll(WORLD.session, world.session)
    .replaceAll(WORLD.userId, String(world.userId));
}

function jwtOf(forged: Forged, world: World): string {
  const signingInput = `${base64url(fill(serialize(forged.header), world))}.${base64url(fill(serialize(forged.claims), world))}`;
  const signature =
    forged.signature === 'real' ? createHmac('sha256', TEST_JWT_SECRET).update(signingInput).digest('base64url') : forged.signature === 'none' ? '' : 'c2lnbmF0dXJl';
  return `${signingInput}.${signature}`;
}

export function wire(c: Case, world: World): RawRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of c.headers) headers[name] = fill(value, world);
  if (c.contentType !== null) headers['content-type'] = c.contentType;
  const auth = c.authorization;
  if (auth.kind === 'world') headers.authorization = `${auth.prefix}${world.access}${auth.suffix}`;
  if (auth.kind === 'text') headers.authorization = auth.value;
  if (auth.kind === 'forged') headers.authorization = `Bearer ${jwtOf(auth.jwt, world)}`;
  const body = c.body && Buffer.from(fill(c.body.toString('latin1'), world), 'latin1');
  if (body) headers['content-length'] = String(body.length);
  return { method: c.method, path: fill(c.path, world), headers, body };
}
