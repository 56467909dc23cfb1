import { Injectable } from '@nestjs/common';
import { dictionary } from '@zxcvbn-ts/language-common';
import { FieldError, ValidationFailedException } from '../common/exceptions';

/** Identifiers of the account a password is for; a password built from them is the first thing tried. */
export interface PasswordOwner {
  email: string;
  username: string;
}

/** Shorter identifiers ("al", "jo") occur inside too many good passphrases to be worth refusing. */
const MIN_IDENTIFIER_LENGTH = 3;

export const PasswordPolicyMessages = {
  COMMON: 'is one of the most common passwords, which attackers try first: choose a less predictable one',
  CONTAINS_IDENTIFIER: 'must not contain your username or the name part of your email address',
} as const;

/**
 * What NIST 800-63B asks beyond length: refuse passwords from lists of common and breached ones (the
 * 49,000 most common, ranked, from zxcvbn-ts's maintained list, shipped in the package: no network) and
 * passwords built from the account's own identifiers. No composition rules. Applied on sign-up, change
 * and reset alike.
 */
@Injectable()
export class PasswordPolicy {
  private readonly common = new Set(dictionary['passwords-common']);

  /** The first rule the password breaks, as a message to show after the field name, or null. */
  problem(password: string, owner: PasswordOwner): string | null {
    const folded = password.normalize('NFKC').toLowerCase();
    if (this.common.has(folded)) return PasswordPolicyMessages.COMMON;
    const identifiers = [owner.username, owner.email.split('@')[0]]
      .map((identifier) => identifier.normalize('NFKC').toLowerCase())
      .filter((identifier) => identifier.length >= MIN_IDENTIFIER_LENGTH);
    if (identifiers.some((identifier) => folded.includes(identifier))) return PasswordPolicyMessages.CONTAINS_IDENTIFIER;
    return null;
  }

  /** Throws the 422 the API answers for a refused password, naming the body field it came in. */
  assertAcceptable(field: string, password: string, owner: PasswordOwner): void {
    const problem = this.problem(password, owner);
    if (problem) {
      const error: FieldError = { field, message: `${field} ${problem}` };
      throw new ValidationFailedException([error]);
    }
  }
}
