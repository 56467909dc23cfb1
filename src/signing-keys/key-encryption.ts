import { createCipheriv, createDecipheriv, hkdfSync, KeyObject, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const SALT = 'nest-auth-service signing keys';
const INFO = 'aes-256-gcm private key encryption';

/** Thrown when the configured secret does not open a stored private key: start-up must stop there. */
export class SigningKeyDecryptionError extends Error {
  constructor(readonly kid: string) {
    super(
      `AuthModule: jwtSecret (JWT_SECRET) does not decrypt the stored signing key ${kid}: start with the secret ` +
        'the keys were created under, or revoke them (keys:revoke) so new ones are made',
    );
    this.name = 'SigningKeyDecryptionError';
  }
}

/**
 * Private signing keys at rest: AES-256-GCM under a key derived from the JWT secret with HKDF-SHA256,
 * the key id bound in as associated data so a ciphertext cannot be moved to another row.
 */
export class KeyEncryption {
  private readonly key: Buffer;

  constructor(secret: KeyObject) {
    this.key = Buffer.from(hkdfSync('sha256', secret.export(), SALT, INFO, 32));
  }

  encrypt(kid: string, plaintext: Buffer): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(Buffer.from(kid));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), ciphertext].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
  }

  decrypt(kid: string, stored: string): Buffer {
    const [version, iv, tag, ciphertext] = stored.split('.');
    if (version !== VERSION || !iv || !tag || ciphertext === undefined) throw new SigningKeyDecryptionError(kid);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(kid));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
    } catch {
      throw new SigningKeyDecryptionError(kid);
    }
  }
}
