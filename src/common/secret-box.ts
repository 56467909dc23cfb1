import { createCipheriv, createDecipheriv, hkdfSync, KeyObject, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const SALT = 'nest-auth-service secrets at rest';

/** What a stored secret could not be opened: the row's id. */
export class SecretBoxError extends Error {
  constructor(readonly id: string) {
    super(`stored secret ${id} does not decrypt under the configured jwtSecret`);
    this.name = 'SecretBoxError';
  }
}

/**
 * Secrets at rest (signing keys' private halves, TOTP secrets): AES-256-GCM under a key derived from
 * the JWT secret with HKDF-SHA256, one key per `purpose`, and the row's id bound in as associated data
 * so a ciphertext cannot be moved to another row. A database dump alone opens nothing.
 */
export class SecretBox {
  private readonly key: Buffer;

  constructor(secret: KeyObject, purpose: string) {
    this.key = Buffer.from(hkdfSync('sha256', secret.export(), SALT, purpose, 32));
  }

  encrypt(id: string, plaintext: Buffer): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(Buffer.from(id));
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return [VERSION, iv, cipher.getAuthTag(), ciphertext].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
  }

  decrypt(id: string, stored: string): Buffer {
    const [version, iv, tag, ciphertext] = stored.split('.');
    if (version !== VERSION || !iv || !tag || ciphertext === undefined) throw new SecretBoxError(id);
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url')).setAAD(Buffer.from(id));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
    } catch {
      throw new SecretBoxError(id);
    }
  }
}
