import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import * as argon2 from 'argon2';
import { randomBytes } from 'node:crypto';
import { AUTH_CONFIG, AuthConfig } from './auth-config';

export type PasswordCheck = 'mismatch' | 'match' | 'match-needs-rehash';

/** Argon2id hashing with the configured cost; argon2 runs in libuv's thread pool, off the event loop. */
@Injectable()
export class PasswordHasher implements OnModuleInit {
  private readonly hashOptions: argon2.HashOptions;
  private dummyHash: string;

  constructor(@Inject(AUTH_CONFIG) config: AuthConfig) {
    this.hashOptions = { type: argon2.argon2id, ...config.passwordHashing };
  }

  async onModuleInit(): Promise<void> {
    // Verified in place of a real hash when the account does not exist, so an unknown email costs
    // the same time as a wrong password and sign-in timing does not reveal which emails have accounts.
    this.dummyHash = await this.hash(randomBytes(32).toString('base64'));
  }

  hash(password: string): Promise<string> {
    return argon2.hash(password, this.hashOptions);
  }

  /** Checks the password against the stored hash, or against a dummy hash when there is none. */
  async verify(storedHash: string | null, password: string): Promise<PasswordCheck> {
    let matches: boolean;
    try {
      matches = await argon2.verify(storedHash ?? this.dummyHash, password);
    } catch {
      // A stored value that is not an argon2 hash never matches.
      return 'mismatch';
    }
    if (!matches || storedHash === null) return 'mismatch';
    const stale = !storedHash.startsWith('$argon2id$') || argon2.needsRehash(storedHash, this.hashOptions);
    return stale ? 'match-needs-rehash' : 'match';
  }
}
