import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, DATABASES, TestDatabase } from './support/databases';
import { newAccount } from './support/fixtures';
import { LivenessReport, sampleLiveness } from './support/liveness';
import { RawRequest, RawResponse, sendRaw } from './support/raw-http';
import { TestSmtpServer } from './support/smtp';
import { RunningApp, startStandalone } from './support/standalone';
import { matrix, TEST_JWT_SECRET } from './support/test-app';

/**
 * Property-based fuzzing of every route of the standalone server (the built dist/, in its own process,
 * over real sockets): bodies, headers, methods and paths drawn by fast-check. Whatever comes in, the
 * answer is below 500, an error is an RFC 9457 problem with a status that matches, no answer shows a
 * stack or SQL, and /health/live keeps answering within 100 ms meanwhile.
 *
 * `FUZZ_RUNS` sets the cases per database and adapter (default below), `FUZZ_SEED` replays a run.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
/** A request that has not answered in this long is hung: a failure, whatever it would have said. */
const REQUEST_TIMEOUT_MS = 10_000;
const LIVE_BOUND_MS = 100;
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

interface Case {
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
const CASES: fc.Arbitrary<Case> = fc.oneof(
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

interface World {
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

function wire(c: Case, world: World): RawRequest {
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

/** What an answer must never show, unless the request itself carried the same text (an echo is no leak). */
const LEAKS: RegExp[] = [
  /\bat (?:[\w$.<>[\] ]+ )?\(?(?:\/|node:)[^\s)]+:\d+(?::\d+)?\)?/, // a stack frame
  /node_modules|\/src\/|\.ts:\d+/,
  /\b(?:QueryFailedError|EntityNotFound\w*|TypeORMError|TypeError|ReferenceError|RangeError|SyntaxError)\b/,
  /\bSQLITE_[A-Z_]+\b/,
  /syntax error at or near|invalid input syntax|invalid byte sequence|violates (?:unique|foreign key|not-null|check) constraint|duplicate key value/i,
  /\b(?:SELECT\s[^"]{0,200}\sFROM|INSERT\s+INTO|UPDATE\s+"?\w+"?\s+SET|DELETE\s+FROM)\b/i,
  /\$argon2id?\$/,
];

function leakIn(res: RawResponse, sent: RawRequest): string | null {
  const requestText = `${sent.method} ${sent.path} ${JSON.stringify(sent.headers)} ${sent.body?.toString('utf8') ?? ''}`;
  const answer = `${JSON.stringify(res.headers)}\n${res.text}`;
  for (const pattern of LEAKS) {
    const found = answer.match(pattern);
    if (found && !requestText.includes(found[0])) return found[0];
  }
  return null;
}

/** Why an answer breaks the contract, or null when it keeps it. */
function violationOf(res: RawResponse, sent: RawRequest): string | null {
  if (res.status >= 500) return `answered ${res.status}: ${res.text.slice(0, 300)}`;
  if (res.status < 100) return `no status`;
  const leak = leakIn(res, sent);
  if (leak) return `the answer shows ${JSON.stringify(leak)}`;
  if (res.status < 400 || sent.method === 'HEAD') return null;
  const type = String(res.headers['content-type'] ?? '');
  if (!type.startsWith('application/problem+json')) return `a ${res.status} sent as ${type || 'no content type'}: ${res.text.slice(0, 300)}`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(res.text) as Record<string, unknown>;
  } catch {
    return `a ${res.status} whose body is not JSON: ${res.text.slice(0, 300)}`;
  }
  if (body.status !== res.status) return `body.status ${String(body.status)} differs from the HTTP status ${res.status}`;
  if (typeof body.type !== 'string' || typeof body.title !== 'string' || typeof body.detail !== 'string') {
    return `not a problem details body: ${res.text.slice(0, 300)}`;
  }
  return null;
}

/** Routes whose success can end the run's session or change its password. */
const ENDS_WORLD = new Set(['refresh', 'signout', 'signout-all', 'end-session', 'change-password']);

/** Whether the run's session may be over after this answer (or was already, as a clean 401 says). */
function worldMayHaveEnded(c: Case, res: RawResponse): boolean {
  const cleanBearer = c.authorization.kind === 'world' && c.authorization.prefix === 'Bearer ' && c.authorization.suffix === '';
  return (ENDS_WORLD.has(c.route) && res.status < 300) || (cleanBearer && res.status === 401);
}

/** What the fuzzer found, kept as fixed cases: each answered 500 or broke the problem-details rule once. */
const FOUND: { what: string; request: (world: World) => RawRequest; status: number | [fastify: number, express: number] }[] = [
  {
    what: 'a lone surrogate in an email (validator threw URIError: 500 on every email route)',
    request: () => jsonRequest('POST', `${AUTH}/forgot-password`, '{"email":"a\\ud800@example.com"}'),
    status: 422,
  },
  {
    what: 'U+0000 in full_name (PostgreSQL refuses it in text: 500)',
    request: () => jsonRequest('POST', `${AUTH}/signup`, JSON.stringify({ ...newAccount(), full_name: 'Ada\u0000' })),
    status: 422,
  },
  {
    what: '51 "❤️" in full_name (MaxLength counted 51 characters, the varchar(100) column 102: 500 on PostgreSQL)',
    request: () => jsonRequest('POST', `${AUTH}/signup`, JSON.stringify({ ...newAccount(), full_name: '❤\ufe0f'.repeat(51) })),
    status: 422,
  },
  {
    what: 'U+0000 in a session id (PostgreSQL: 500)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/${world.session}%00`, headers: { authorization: `Bearer ${world.access}` } }),
    status: 404,
  },
  {
    what: 'a raw byte above 0x7F in the request line (Node: a bodiless 400; Fastify: its own JSON)',
    request: () => ({ method: 'GET', path: `${AUTH}/me?\u00d3=1`, headers: {} }),
    status: 400,
  },
  {
    what: 'headers over 16 KiB (Node: a bodiless 431; Fastify: its own JSON)',
    request: () => ({ method: 'GET', path: `${AUTH}/me`, headers: { 'x-padding': 'a'.repeat(20_000) } }),
    status: 431,
  },
  {
    what: 'a percent-encoding that does not decode (Fastify: its own JSON, quoting the URL)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/%E0%A4%A`, headers: { authorization: `Bearer ${world.access}` } }),
    status: [400, 400],
  },
  {
    what: 'a path parameter over 100 characters (Fastify: 414 in its own JSON)',
    request: (world) => ({ method: 'DELETE', path: `${AUTH}/sessions/${'a'.repeat(300)}`, headers: { authorization: `Bearer ${world.access}` } }),
    status: [414, 404],
  },
];

function jsonRequest(method: string, path: string, body: string): RawRequest {
  return { method, path, headers: { 'content-type': 'application/json' }, body: Buffer.from(body) };
}

describe.each(matrix(DATABASES))('fuzzing every route on %s with %s', (databaseKind, adapter) => {
  let database: TestDatabase;
  let smtp: TestSmtpServer;
  let server: RunningApp;
  let workdir: string;
  let world: World;

  function call(path: string, body: object): Promise<RawResponse> {
    const headers = { 'content-type': 'application/json' };
    return sendRaw(server.baseUrl, { method: 'POST', path, headers, body: Buffer.from(JSON.stringify(body)) }, REQUEST_TIMEOUT_MS);
  }

  function worldFrom(res: RawResponse, emailAddress: string, password: string): World {
    const body = JSON.parse(res.text) as { access_token: string; refresh_token: string; user: { id: number } };
    const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url').toString()) as { sid: string };
    return { email: emailAddress, password, userId: body.user.id, access: body.access_token, refresh: body.refresh_token, session: claims.sid };
  }

  /** Signs the run's account in again; a fresh account when the fuzzer has locked this one out (429). */
  async function renewWorld(): Promise<void> {
    const signin = await call(`${AUTH}/signin`, { email: world.email, password: world.password });
    if (signin.status === 200) {
      world = worldFrom(signin, world.email, world.password);
      return;
    }
    const account = newAccount();
    const signup = await call(`${AUTH}/signup`, account);
    if (signup.status !== 201) throw new Error(`could not sign up a fresh account: ${signup.status} ${signup.text}`);
    world = worldFrom(signup, account.email, account.password);
  }

  beforeAll(async () => {
    database = await createTestDatabase(databaseKind);
    smtp = await TestSmtpServer.start();
    workdir = mkdtempSync(join(tmpdir(), 'auth-fuzz-'));
    server = await startStandalone(
      {
        DATABASE_URL: database.url,
        SMTP_URL: smtp.url,
        JWT_SECRET: TEST_JWT_SECRET,
        HTTP_ADAPTER: adapter,
        RATE_LIMIT_PER_MINUTE: '0',
        SIGNIN_MAX_FAILURES: '100',
        MAIL_REQUESTS_PER_ACCOUNT_PER_HOUR: '1000',
      },
      workdir,
    );
    const account = newAccount();
    world = worldFrom(await call(`${AUTH}/signup`, account), account.email, account.password);
  });

  afterAll(async () => {
    await server?.stop();
    await smtp?.stop();
    await database?.drop();
    if (workdir) rmSync(workdir, { recursive: true, force: true });
  });

  it(`answers ${RUNS} random requests below 500, errors as problem details, nothing internal shown, /health/live within ${LIVE_BOUND_MS} ms`, async () => {
    const statuses = new Map<string, number>();
    let requests = 0;
    const sampler = sampleLiveness(server.baseUrl);
    const started = Date.now();
    let liveness: LivenessReport;
    try {
      await fc.assert(
        fc.asyncProperty(CASES, async (c) => {
          requests += 1;
          const sent = wire(c, world);
          const res = await sendRaw(server.baseUrl, sent, REQUEST_TIMEOUT_MS);
          const key = `${c.route} ${res.status}`;
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          const violation = violationOf(res, sent);
          if (violation) throw new Error(`${sent.method} ${sent.path.slice(0, 200)} ${JSON.stringify(sent.headers).slice(0, 600)}: ${violation}`);
          if (c.route === 'change-password' && res.status === 200) {
            world.password = (JSON.parse(sent.body!.toString('utf8')) as { new_password: string }).new_password;
          }
          if (worldMayHaveEnded(c, res)) await renewWorld();
        }),
        { numRuns: RUNS, seed: SEED, verbose: 1 },
      );
    } finally {
      liveness = await sampler.stop();
    }
    const seconds = (Date.now() - started) / 1000;
    const summary = [...statuses.entries()].sort().map(([key, n]) => `${key}: ${n}`).join(', ');
    console.log(
      `fuzz ${databaseKind}/${adapter}: ${requests} requests (${RUNS} cases, the rest shrinking) in ${seconds.toFixed(1)} s; ` +
        `/health/live ${liveness.samples} probes, p50 ${liveness.p50Ms} ms, p99 ${liveness.p99Ms} ms, max ${liveness.maxMs} ms, ${liveness.failed} failed\n${summary}`,
    );
    expect(liveness.failed).toBe(0);
    expect(liveness.maxMs).toBeLessThan(LIVE_BOUND_MS);

    // Still whole afterwards: ready, and the account the run kept can sign in.
    expect((await sendRaw(server.baseUrl, { method: 'GET', path: '/health/ready', headers: {} }, REQUEST_TIMEOUT_MS)).status).toBe(200);
    await renewWorld();
    expect(server.output()).not.toMatch(/unhandled|uncaught/i);
  }, 180_000);

  it.each(FOUND.map((found) => [found.what, found] as const))('answers %s with a problem', async (_what, found) => {
    const sent = found.request(world);
    const res = await sendRaw(server.baseUrl, sent, REQUEST_TIMEOUT_MS);
    expect(violationOf(res, sent)).toBeNull();
    expect(res.status).toBe(typeof found.status === 'number' ? found.status : found.status[adapter === 'fastify' ? 0 : 1]);
  });
});
