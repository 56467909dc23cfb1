import { createHash, randomBytes } from 'node:crypto';

/**
 * A bearer secret of 256 bits from the CSPRNG, base64url (43 characters). Guessing one is hopeless, so
 * a plain SHA-256 (no salt, no slow hash) is enough to keep a stored copy useless to whoever reads it.
 */
export function newOpaqueToken(): string {
  return randomBytes(32).toString('base64url');
}

/** What is stored in place of an opaque token: its SHA-256, hex. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}
