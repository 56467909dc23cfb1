import { plainToInstance } from 'class-transformer';
import { validate, ValidationError } from 'class-validator';
import { ChangePasswordDto, ForgotPasswordDto, ResetPasswordDto, SignInDto, SignUpDto } from './requests.dto';

type Plain = Record<string, unknown>;

function signUpBody(overrides: Plain = {}): Plain {
  return { email: 'ada@example.com', username: 'ada', password: 'correct horse battery', ...overrides };
}

async function check<T extends object>(type: new () => T, body: Plain): Promise<{ dto: T; errors: ValidationError[] }> {
  const dto = plainToInstance(type, body);
  return { dto, errors: await validate(dto) };
}

function failedFields(errors: ValidationError[]): string[] {
  return errors.map((error) => error.property);
}

describe(SignUpDto.name, () => {
  it('accepts a valid body', async () => {
    const { errors } = await check(SignUpDto, signUpBody());

    expect(errors).toEqual([]);
  });

  it('trims the email before checking it', async () => {
    const { dto, errors } = await check(SignUpDto, signUpBody({ email: '  Ada@Example.com \t' }));

    expect(errors).toEqual([]);
    expect(dto.email).toBe('Ada@Example.com');
  });

  it.each(['not-an-email', 'ada@', '@example.com', '', `${'a'.repeat(250)}@example.com`, 42, '\ud800', 'ada\udc00@example.com'])(
    'refuses the email %p',
    async (email) => {
      const { errors } = await check(SignUpDto, signUpBody({ email }));

      expect(failedFields(errors)).toEqual(['email']);
    },
  );

  it.each([
    ['a zero-width space', 'ada\u200b@example.com', 'hasNoInvisibleCharacters'],
    ['a zero-width joiner', 'a\u200dda@example.com', 'hasNoInvisibleCharacters'],
    ['a soft hyphen in the domain', 'ada@exam\u00adple.com', 'hasNoInvisibleCharacters'],
    ['a right-to-left override', 'ada\u202e@example.com', 'hasNoInvisibleCharacters'],
    ['a variation selector', 'ada\ufe0f@example.com', 'hasNoInvisibleCharacters'],
    ['a no-break space', 'ada\u00a0x@example.com', 'hasNoInvisibleCharacters'],
    ['CR and LF in a quoted local part', '"ada\r\nBcc: x@example.org"@example.com', 'hasNoInvisibleCharacters'],
    ['a quoted local part', '"ada"@example.com', 'isNotQuoted'],
    ['a fullwidth quoted local part', '\uff02ada\uff02@example.com', 'isNotQuoted'],
    ['a domain IDNA refuses', 'ada@xn--a.com', 'isEmail'],
  ])('refuses an email with %s', async (_case, email, constraint) => {
    const { errors } = await check(SignUpDto, signUpBody({ email }));

    expect(failedFields(errors)).toEqual(['email']);
    expect(Object.keys(errors[0].constraints ?? {})).toContain(constraint);
  });

  it.each([
    ['a fullwidth address', 'ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ'],
    ['an ideographic full stop in the domain', 'ada@example。com'],
    ['a Unicode domain', 'ada@bücher.example'],
    ['its xn-- form', 'ada@xn--bcher-kva.example'],
    ['a Unicode local part', 'ελένη@example.com'],
  ])('accepts an email with %s', async (_case, email) => {
    const { errors } = await check(SignUpDto, signUpBody({ email }));

    expect(errors).toEqual([]);
  });

  it('measures the email as it will be stored, lower-cased and in code points', async () => {
    const growsWhenLowerCased = `${'a'.repeat(64)}@${'İ'.repeat(60)}.${'İ'.repeat(60)}.com`;
    const fitsOnceLowerCased = `${'İ'.repeat(20)}@example.com`;

    expect((await check(SignUpDto, signUpBody({ email: growsWhenLowerCased }))).errors[0].constraints).toMatchObject({
      fitsNormalizedEmail: 'email must be at most 254 characters once normalised',
    });
    expect((await check(SignUpDto, signUpBody({ email: fitsOnceLowerCased }))).errors).toEqual([]);
  });

  it.each(['ada', 'Ada.Lovelace', 'ada_l-1', 'Ελένη', 'ＡＤＡ', 'a'.repeat(50), '123'])('accepts the username %p', async (username) => {
    const { errors } = await check(SignUpDto, signUpBody({ username }));

    expect(errors).toEqual([]);
  });

  it.each(['ad', 'a'.repeat(51), 'ada lovelace', 'ada@home', 'ada!', '', 'ada\n', null])(
    'refuses the username %p',
    async (username) => {
      const { errors } = await check(SignUpDto, signUpBody({ username }));

      expect(failedFields(errors)).toEqual(['username']);
    },
  );

  it.each([
    ['8 characters', '12345678'],
    ['128 characters', 'x'.repeat(128)],
    ['spaces', 'a b c d e f'],
    ['any Unicode', 'ключ🔑密码 ü'],
  ])('accepts a password of %s', async (_case, password) => {
    const { dto, errors } = await check(SignUpDto, signUpBody({ password }));

    expect(errors).toEqual([]);
    expect(dto.password).toBe(password);
  });

  it.each([
    ['7 characters', '1234567'],
    ['129 characters', 'x'.repeat(129)],
  ])('refuses a password of %s', async (_case, password) => {
    const { errors } = await check(SignUpDto, signUpBody({ password }));

    expect(failedFields(errors)).toEqual(['password']);
  });

  it('does not trim the password', async () => {
    const { dto } = await check(SignUpDto, signUpBody({ password: '  padded password  ' }));

    expect(dto.password).toBe('  padded password  ');
  });

  it.each([undefined, null, 'Ada Lovelace', '😀'.repeat(100)])('accepts full_name %p', async (full_name) => {
    const { errors } = await check(SignUpDto, signUpBody({ full_name }));

    expect(errors).toEqual([]);
  });

  it.each([
    ['101 letters', 'a'.repeat(101)],
    // 51 hearts with their variation selector: 102 code points, which MaxLength counted as 51.
    ['51 "❤️"', '❤\ufe0f'.repeat(51)],
    ['U+0000, which PostgreSQL cannot store', 'Ada\u0000'],
    ['an unpaired surrogate', 'Ada \ud800'],
  ])('refuses a full_name of %s', async (_name, full_name) => {
    const { errors } = await check(SignUpDto, signUpBody({ full_name }));

    expect(failedFields(errors)).toEqual(['full_name']);
  });

  it('reports every missing field', async () => {
    const { errors } = await check(SignUpDto, {});

    expect(failedFields(errors).sort()).toEqual(['email', 'password', 'username']);
  });
});

describe(SignInDto.name, () => {
  it('accepts a password shorter than the sign-up minimum', async () => {
    const { errors } = await check(SignInDto, { email: 'ada@example.com', password: 'old' });

    expect(errors).toEqual([]);
  });

  it('trims the email', async () => {
    const { dto } = await check(SignInDto, { email: ' ada@example.com ', password: 'secret' });

    expect(dto.email).toBe('ada@example.com');
  });

  it.each([
    ['an empty password', { email: 'ada@example.com', password: '' }, ['password']],
    ['a password over 128 characters', { email: 'ada@example.com', password: 'x'.repeat(129) }, ['password']],
    ['a bad email', { email: 'ada', password: 'secret' }, ['email']],
  ])('refuses %s', async (_case, body, fields) => {
    const { errors } = await check(SignInDto, body);

    expect(failedFields(errors)).toEqual(fields);
  });
});

describe(ForgotPasswordDto.name, () => {
  it('trims and accepts an email', async () => {
    const { dto, errors } = await check(ForgotPasswordDto, { email: ' ada@example.com' });

    expect(errors).toEqual([]);
    expect(dto.email).toBe('ada@example.com');
  });

  it('refuses a missing email', async () => {
    const { errors } = await check(ForgotPasswordDto, {});

    expect(failedFields(errors)).toEqual(['email']);
  });
});

describe(ResetPasswordDto.name, () => {
  it('accepts a token and a new password', async () => {
    const { errors } = await check(ResetPasswordDto, { token: 'abc', new_password: 'new password' });

    expect(errors).toEqual([]);
  });

  it.each([
    ['an empty token', { token: '', new_password: 'new password' }, ['token']],
    ['a token over 512 characters', { token: 't'.repeat(513), new_password: 'new password' }, ['token']],
    ['a short new password', { token: 'abc', new_password: 'short' }, ['new_password']],
  ])('refuses %s', async (_case, body, fields) => {
    const { errors } = await check(ResetPasswordDto, body);

    expect(failedFields(errors)).toEqual(fields);
  });
});

describe(ChangePasswordDto.name, () => {
  it('accepts an old password of any length from 1 and a valid new one', async () => {
    const { errors } = await check(ChangePasswordDto, { old_password: 'x', new_password: 'a new password' });

    expect(errors).toEqual([]);
  });

  it('holds the new password to the new-password rule', async () => {
    const { errors } = await check(ChangePasswordDto, { old_password: 'old password', new_password: '1234567' });

    expect(failedFields(errors)).toEqual(['new_password']);
  });
});

describe('SignUpDto username normalisation bound', () => {
  it('refuses a username whose NFKC form would overflow the 50-character column', async () => {
    const { errors } = await check(SignUpDto, { email: 'a@example.com', username: '\uFDFA'.repeat(3), password: 'long enough' });

    expect(errors.map((e) => e.property)).toEqual(['username']);
    expect(Object.values(errors[0].constraints ?? {}).join()).toMatch(/normalised/);
  });

  it('accepts a username whose NFKC form fits', async () => {
    const { errors } = await check(SignUpDto, { email: 'a@example.com', username: 'ab' + '\uFDFA'.repeat(2), password: 'long enough' });

    expect(errors).toEqual([]);
  });
});
