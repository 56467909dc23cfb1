import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '../../common/openapi';
import { Transform } from 'class-transformer';
import { isEmail, IsOptional, IsString, Length, Matches, MaxLength, ValidateBy } from 'class-validator';
import { canonicalUsername } from '../../users/users.service';
import { characterCount, IsCurrentPassword, IsNewPassword } from '../../passwords/password.validator';

const EMAIL_MAX_LENGTH = 254;
const USERNAME_MAX_LENGTH = 50;
const USERNAME_PATTERN = /^[\p{L}\p{N}._-]+$/u;
/**
 * What the document says instead: many validators and generated clients compile `pattern` without the
 * `u` flag, where `\p{L}` means the letter p and every username would fail. This one reads the same either
 * way, refuses every ASCII character the real pattern refuses, and never refuses a valid username.
 */
const USERNAME_PATTERN_PORTABLE = '^[^\\x00-\\x2c\\x2f\\x3a-\\x40\\x5b-\\x5e\\x60\\x7b-\\x7f]+$';

/**
 * Uniqueness is checked on the NFKC form, which can be longer than what was typed (one Arabic ligature
 * expands to 18 characters): it must fit its column too, or the insert fails with a 500.
 */
function FitsCanonicalUsername(): PropertyDecorator {
  return ValidateBy({
    name: 'fitsCanonicalUsername',
    validator: {
      validate: (value) => typeof value !== 'string' || characterCount(canonicalUsername(value)) <= USERNAME_MAX_LENGTH,
      defaultMessage: () => `username must be at most ${USERNAME_MAX_LENGTH} characters once normalised`,
    },
  });
}

/**
 * What neither PostgreSQL text nor UTF-8 can hold as sent: U+0000, and half a surrogate pair (in a `u`
 * regex a whole pair is one code point, so `\p{Cs}` matches only a surrogate without its partner).
 */
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/**
 * validator's `isEmail` throws (URIError) on a string with a lone surrogate, which JSON can carry
 * (`"\ud800"`); that must be a 422 like any other bad address, not a 500.
 */
function IsEmailAddress(): PropertyDecorator {
  return ValidateBy({
    name: 'isEmail',
    validator: {
      validate: (value) => typeof value === 'string' && !UNSTORABLE.test(value) && isEmail(value),
      defaultMessage: () => 'email must be a valid email address',
    },
  });
}

/** Surrounding spaces are dropped before the check; case is folded later, by `normalizeEmail`. */
function EmailField(): PropertyDecorator {
  return applyDecorators(
    ApiProperty({ example: 'ada@example.com', maxLength: EMAIL_MAX_LENGTH, format: 'email' }),
    Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)),
    IsString(),
    MaxLength(EMAIL_MAX_LENGTH),
    IsEmailAddress(),
  );
}

const FULL_NAME_MAX_LENGTH = 100;

/**
 * The column holds 100 characters as PostgreSQL counts them (code points). class-validator's MaxLength
 * leaves variation selectors (U+FE0F) out of its count, so 60 "❤️" (120 code points) passed it and the
 * insert failed with a 500; and PostgreSQL refuses U+0000 in text outright.
 */
function StorableName(): PropertyDecorator {
  return applyDecorators(
    ValidateBy({
      name: 'maxCharacters',
      validator: {
        validate: (value) => typeof value !== 'string' || characterCount(value) <= FULL_NAME_MAX_LENGTH,
        defaultMessage: (args) => `${args?.property} must be at most ${FULL_NAME_MAX_LENGTH} characters`,
      },
    }),
    ValidateBy({
      name: 'storableText',
      validator: {
        validate: (value) => typeof value !== 'string' || !UNSTORABLE.test(value),
        defaultMessage: (args) => `${args?.property} must not contain U+0000 or an unpaired surrogate`,
      },
    }),
  );
}

export class SignUpDto {
  @EmailField()
  email: string;

  @ApiProperty({
    example: 'ada',
    minLength: 3,
    maxLength: USERNAME_MAX_LENGTH,
    pattern: USERNAME_PATTERN_PORTABLE,
    description:
      'Letters, digits, dot, dash and underscore (letters and digits of any script: Unicode \\p{L} and \\p{N}); ' +
      'unique regardless of case. The pattern is exact for ASCII; beyond ASCII the server also refuses symbols ' +
      'and punctuation',
  })
  @IsString()
  @Length(3, USERNAME_MAX_LENGTH)
  @Matches(USERNAME_PATTERN, { message: 'username may contain only letters, digits, dot, dash and underscore' })
  @FitsCanonicalUsername()
  username: string;

  @IsNewPassword('Password, 8 to 128 characters of any kind')
  password: string;

  @ApiPropertyOptional({ type: String, example: 'Ada Lovelace', maxLength: FULL_NAME_MAX_LENGTH, nullable: true })
  @IsOptional()
  @IsString()
  @StorableName()
  full_name?: string | null;
}

export class SignInDto {
  @EmailField()
  email: string;

  @IsCurrentPassword('Password')
  password: string;
}

export class ForgotPasswordDto {
  @EmailField()
  email: string;
}

export class ResetPasswordDto {
  @ApiProperty({ description: 'The token from the reset link', minLength: 1, maxLength: 512 })
  @IsString()
  @Length(1, 512)
  token: string;

  @IsNewPassword()
  new_password: string;
}

export class VerifyEmailDto {
  @ApiProperty({ description: 'The token from the verification link', minLength: 1, maxLength: 512 })
  @IsString()
  @Length(1, 512)
  token: string;
}

export class ResendVerificationDto {
  @EmailField()
  email: string;
}

export class ChangePasswordDto {
  @IsCurrentPassword()
  old_password: string;

  @IsNewPassword()
  new_password: string;
}

export class RefreshTokenDto {
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    minLength: 1,
    maxLength: 512,
    description:
      'The refresh token from sign-up, sign-in or the last refresh. Required (a missing or null one is a 422) ' +
      'unless the server runs in cookie mode (REFRESH_TOKEN_COOKIE=true): there the `refresh_token` cookie is ' +
      'read instead and the body may be `{}`',
  })
  @IsOptional()
  @IsString()
  @Length(1, 512)
  refresh_token?: string | null;
}
