import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional } from '../../common/openapi';
import { Transform } from 'class-transformer';
import { isEmail, IsOptional, IsString, Length, Matches, MaxLength, ValidateBy, ValidateIf } from 'class-validator';
import { canonicalEmail, canonicalUsername, normalizeEmail } from '../../users/users.service';
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
 * The stored form is what must fit the column: lower-casing can lengthen an address (`İ` becomes `i` and
 * a combining dot), and one that passed the check as typed overflowed it (a 500 on PostgreSQL).
 */
function FitsNormalizedEmail(): PropertyDecorator {
  return ValidateBy({
    name: 'fitsNormalizedEmail',
    validator: {
      validate: (value) => typeof value !== 'string' || characterCount(normalizeEmail(value)) <= EMAIL_MAX_LENGTH,
      defaultMessage: () => `email must be at most ${EMAIL_MAX_LENGTH} characters once normalised`,
    },
  });
}

/**
 * Characters no mailbox needs and that make an address look like another: controls (CR and LF among
 * them), format and other default-ignorable characters (zero-width space and joiners, soft hyphen,
 * word joiner, bidi controls, variation selectors) and spaces of any kind. Checked as typed and in NFKC.
 */
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Z}\p{Default_Ignorable_Code_Point}]/u;

function HasNoInvisibleCharacters(): PropertyDecorator {
  return ValidateBy({
    name: 'hasNoInvisibleCharacters',
    validator: {
      validate: (value) => typeof value !== 'string' || !INVISIBLE_OR_CONTROL.test(value + value.normalize('NFKC')),
      defaultMessage: () => 'email must not contain spaces, control or invisible characters',
    },
  });
}

/**
 * `"ada"@example.com` is the mailbox `ada@example.com` (RFC 5321), and a quoted part can hold what a
 * plain one cannot (spaces, CR and LF): refused rather than unquoted, since no one signs up with it.
 */
function IsNotQuoted(): PropertyDecorator {
  return ValidateBy({
    name: 'isNotQuoted',
    validator: {
      validate: (value) => typeof value !== 'string' || !value.normalize('NFKC').includes('"'),
      defaultMessage: () => 'email must not have a quoted local part',
    },
  });
}

/**
 * What neither PostgreSQL text nor UTF-8 can hold as sent: U+0000, and half a surrogate pair (in a `u`
 * regex a whole pair is one code point, so `\p{Cs}` matches only a surrogate without its partner).
 */
const UNSTORABLE = /[\u0000\p{Cs}]/u;

/**
 * The address checked in the form it is stored in, so that `ａｄａ＠example.com` is `ada@example.com`.
 * A lone surrogate (JSON can carry `"\ud800"`) is refused first: validator's `isEmail` throws on it.
 */
function IsCanonicalEmail(): PropertyDecorator {
  return ValidateBy({
    name: 'isEmail',
    validator: {
      validate: (value) => {
        if (typeof value !== 'string') return true;
        if (UNSTORABLE.test(value)) return false;
        const canonical = canonicalEmail(value);
        return canonical !== null && isEmail(canonical);
      },
      defaultMessage: () => 'email must be a valid email address',
    },
  });
}

/**
 * Surrounding spaces are dropped before the checks; the rest of the folding (NFKC, case, IDNA) is
 * `normalizeEmail`'s, and the checks look at its result.
 */
function EmailField(): PropertyDecorator {
  return applyDecorators(
    ApiProperty({ example: 'ada@example.com', maxLength: EMAIL_MAX_LENGTH, format: 'email' }),
    Transform(({ value }) => (typeof value === 'string' ? value.trim() : value)),
    IsString(),
    MaxLength(EMAIL_MAX_LENGTH),
    HasNoInvisibleCharacters(),
    IsNotQuoted(),
    IsCanonicalEmail(),
    FitsNormalizedEmail(),
  );
}

/** A username: the same rules at sign-up and when it changes. */
function UsernameField(options: { required?: boolean } = {}): PropertyDecorator {
  return applyDecorators(
    ApiProperty({
      example: 'ada',
      required: options.required ?? true,
      minLength: 3,
      maxLength: USERNAME_MAX_LENGTH,
      pattern: USERNAME_PATTERN_PORTABLE,
      description:
        'Letters, digits, dot, dash and underscore (letters and digits of any script: Unicode \\p{L} and \\p{N}); ' +
        'unique regardless of case. The pattern is exact for ASCII; beyond ASCII the server also refuses symbols ' +
        'and punctuation',
    }),
    IsString(),
    Length(3, USERNAME_MAX_LENGTH),
    Matches(USERNAME_PATTERN, { message: 'username may contain only letters, digits, dot, dash and underscore' }),
    FitsCanonicalUsername(),
    // Optional means absent: `null` is not a username, so it is validated (and refused) like any value.
    ...(options.required === false ? [ValidateIf((dto: { username?: unknown }) => dto.username !== undefined)] : []),
  );
}

const FULL_NAME_MAX_LENGTH = 100;

/**
 * The column holds 100 characters as PostgreSQL counts them (code points). class-validator's MaxLength
 * leaves variation selectors (U+FE0F) out of its count, so 60 "❤️" (120 code points) passed it and the
 * insert failed with a 500; and PostgreSQL refuses U+0000 in text outright.
 */
function FullNameField(): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({ type: String, example: 'Ada Lovelace', maxLength: FULL_NAME_MAX_LENGTH, nullable: true }),
    IsOptional(),
    IsString(),
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

  @UsernameField()
  username: string;

  @IsNewPassword('Password, 8 to 128 characters of any kind')
  password: string;

  @FullNameField()
  full_name?: string | null;
}

/** `PATCH /me`: only what is given changes; `full_name: null` clears it. */
export class UpdateMeDto {
  @UsernameField({ required: false })
  username?: string;

  @FullNameField()
  full_name?: string | null;
}

/**
 * The password that confirms a change of the account: required when the account has one (a 422 without
 * it), left out by an account without one, which needs a recent sign-in instead.
 */
function ConfirmingPasswordField(): PropertyDecorator {
  return applyDecorators(
    ValidateIf((dto: { password?: unknown }) => dto.password !== undefined),
    IsCurrentPassword(),
    // Last, so that it replaces the required property IsCurrentPassword documents.
    ApiPropertyOptional({
      description:
        'The current password; required when the account has one (a 422 without it). An account without a password ' +
        'sends none and needs a sign-in no older than 5 minutes instead',
      minLength: 1,
      maxLength: 128,
      format: 'password',
    }),
  );
}

/** `POST /change-email`. */
export class ChangeEmailDto {
  @EmailField()
  new_email: string;

  @ConfirmingPasswordField()
  password?: string;
}

/** `POST /confirm-email-change`. */
export class ConfirmEmailChangeDto {
  @ApiProperty({ description: 'The token from the link mailed to the new address', minLength: 1, maxLength: 512 })
  @IsString()
  @Length(1, 512)
  token: string;
}

/** `DELETE /me`. */
export class DeleteAccountDto {
  @ConfirmingPasswordField()
  password?: string;
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

/** A six-digit TOTP code, or (where the route says so) a recovery code like `abcd-efgh-jkmn`. */
const CodeField = (): PropertyDecorator => (target, key) => {
  ApiProperty({ description: 'A 6-digit code from the authenticator app, or an unused recovery code', example: '123456', minLength: 6, maxLength: 32 })(target, key);
  IsString()(target, key);
  Length(6, 32)(target, key);
};

export class MfaCodeDto {
  @CodeField()
  code: string;
}

export class SignInMfaDto {
  @ApiProperty({ description: 'From the 403 `Multi-factor authentication required` of `POST /signin`', minLength: 1, maxLength: 512 })
  @IsString()
  @Length(1, 512)
  mfa_token: string;

  @CodeField()
  code: string;
}
