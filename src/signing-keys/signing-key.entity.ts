import { Column, PrimaryColumn } from 'typeorm';
import { AuthEntity } from '../options/table-prefix';

/**
 * An asymmetric key access tokens are signed with (EdDSA or ES256). It is published in the JWKS from the
 * moment it is created, signs from `activatesAt` until the next key activates, and stays published until
 * the last token it signed has expired; revoking it withdraws it at once.
 */
@AuthEntity('signing_keys')
export class SigningKey {
  @PrimaryColumn({ type: 'varchar', length: 64 })
  kid: string;

  @Column({ type: 'varchar', length: 16 })
  algorithm: string;

  /** The public key as a JWK (JSON text). */
  @Column({ name: 'public_jwk', type: 'text' })
  publicJwk: string;

  /** The PKCS#8 private key, encrypted (see KeyEncryption). */
  @Column({ name: 'private_key', type: 'text' })
  privateKey: string;

  @Column({ name: 'created_at', type: Date })
  createdAt: Date;

  /** When it starts signing: at least the publish delay after `createdAt`, so every verifier has it first. */
  @Column({ name: 'activates_at', type: Date })
  activatesAt: Date;

  @Column({ name: 'revoked_at', type: Date, nullable: true })
  revokedAt: Date | null;
}
