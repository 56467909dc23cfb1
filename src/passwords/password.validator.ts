import { applyDecorators } from '@nestjs/common';
import { ApiProperty } from '../common/openapi';
import { IsString, ValidateBy, ValidationOptions } from 'class-validator';

export const PASSWORD_MIN_LENGTH = 8;
/** Bounds the hashing work one request can ask for; long passphrases still fit. */
export const PASSWORD_MAX_LENGTH = 128;

/** Length in characters as a person counts them (code points), not UTF-16 units: an emoji counts once. */
export function characterCount(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}

function CharacterLength(min: number, max: number, options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'characterLength',
      validator: {
        validate: (value) => typeof value === 'string' && characterCount(value) >= min && characterCount(value) <= max,
        defaultMessage: (args) => `${args?.property} must be between ${min} and ${max} characters long`,
      },
    },
    options,
  );
}

/**
 * A new password: 8 to 128 characters of any kind, no composition rules (NIST 800-63B), stored exactly
 * as typed. Spaces and any Unicode are allowed; nothing is trimmed or truncated.
 */
export function IsNewPassword(description = 'New password, 8 to 128 characters of any kind'): PropertyDecorator {
  return applyDecorators(
    ApiProperty({ description, minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH, format: 'password' }),
    IsString(),
    CharacterLength(PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH),
  );
}

/**
 * A password being checked against a stored hash. Only bounded in size: a password set under an older,
 * looser rule must still be accepted for sign-in.
 */
export function IsCurrentPassword(description = 'Current password'): PropertyDecorator {
  return applyDecorators(
    ApiProperty({ description, minLength: 1, maxLength: PASSWORD_MAX_LENGTH, format: 'password' }),
    IsString(),
    CharacterLength(1, PASSWORD_MAX_LENGTH),
  );
}
