import { createHmac, KeyObject, sign, timingSafeEqual, verify } from 'node:crypto';
import type { JwtAlgorithmName } from '../options/auth-config';

/** The algorithms access tokens may be signed with (RFC 7518 HS256 and ES256, RFC 8037 EdDSA over Ed25519). */
export type JwtAlgorithm = JwtAlgorithmName;

/** The longest token looked at: ours are under 1 KiB; anything far larger is refused before parsing. */
const MAX_TOKEN_LENGTH = 8192;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface DecodedJws {
  header: { alg: string; kid?: string } & Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

function encodeJson(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function decodeJson(part: string): Record<string, unknown> | null {
  if (!BASE64URL.test(part)) return null;
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function signatureOf(algorithm: JwtAlgorithm, key: KeyObject, input: string): Buffer {
  switch (algorithm) {
    case 'HS256':
      return createHmac('sha256', key).update(input).digest();
    case 'EdDSA':
      return sign(null, Buffer.from(input), key);
    case 'ES256':
      // JWS wants the raw r || s pair (RFC 7518 3.4), not DER.
      return sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  }
}

/**
 * A compact JWS (RFC 7515) over `payload`, naming its key. Signed with node:crypto on the calling
 * thread: WebCrypto (which `jose` 6 uses) runs each operation on libuv's pool, where argon2 hashes
 * queue, and a guarded request would wait behind them (measured in BENCHMARKS.md, "Signing keys").
 */
export function signJws(payload: object, algorithm: JwtAlgorithm, kid: string, key: KeyObject): string {
  const input = `${encodeJson({ alg: algorithm, typ: 'JWT', kid })}.${encodeJson(payload)}`;
  return `${input}.${signatureOf(algorithm, key, input).toString('base64url')}`;
}

/** Splits and parses a compact JWS without trusting any of it; null when it is not one. */
export function decodeJws(token: string): DecodedJws | null {
  if (token.length > MAX_TOKEN_LENGTH) return null;
  const parts = token.split('.');
  if (parts.length !== 3 || !BASE64URL.test(parts[2])) return null;
  const header = decodeJson(parts[0]);
  const payload = decodeJson(parts[1]);
  if (!header || !payload || typeof header.alg !== 'string') return null;
  if (header.kid !== undefined && typeof header.kid !== 'string') return null;
  // A critical extension we do not understand must make the token invalid (RFC 7515 4.1.11).
  if (header.crit !== undefined) return null;
  return {
    header: header as DecodedJws['header'],
    payload,
    signingInput: `${parts[0]}.${parts[1]}`,
    signature: Buffer.from(parts[2], 'base64url'),
  };
}

/** Whether `signature` is `algorithm` over `input` with `key`; the algorithm comes from our key, never the token. */
export function verifyJwsSignature(algorithm: JwtAlgorithm, key: KeyObject, input: string, signature: Buffer): boolean {
  switch (algorithm) {
    case 'HS256': {
      const expected = createHmac('sha256', key).update(input).digest();
      return signature.length === expected.length && timingSafeEqual(signature, expected);
    }
    case 'EdDSA':
      return signature.length === 64 && verify(null, Buffer.from(input), key, signature);
    case 'ES256':
      return signature.length === 64 && verify('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }, signature);
  }
}
