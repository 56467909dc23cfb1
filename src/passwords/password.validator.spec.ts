import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { characterCount, IsCurrentPassword, IsNewPassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from './password.validator';

class NewPasswordBody {
  @IsNewPassword()
  password: unknown;
}

class CurrentPasswordBody {
  @IsCurrentPassword()
  password: unknown;
}

async function failedRules(type: new () => object, password: unknown): Promise<string[]> {
  const errors = await validate(plainToInstance(type, { password }));
  return errors.flatMap((error) => Object.keys(error.constraints ?? {}));
}

describe(characterCount.name, () => {
  it.each([
    ['', 0],
    ['abc', 3],
    ['pass word', 9],
    ['é', 1],
    ['\u{1F600}', 1],
    ['\u{1F600}\u{1F600}ab', 4],
    ['\u{1D400}', 1],
    ['日本語', 3],
  ])('counts %p as %i characters', (value, expected) => {
    expect(characterCount(value)).toBe(expected);
  });

  it('counts code points where String#length counts UTF-16 units', () => {
    const value = '\u{1F511}'.repeat(5);

    expect(value.length).toBe(10);
    expect(characterCount(value)).toBe(5);
  });
});

describe(IsNewPassword.name, () => {
  it.each([
    ['the minimum length', 'a'.repeat(PASSWORD_MIN_LENGTH)],
    ['the maximum length', 'a'.repeat(PASSWORD_MAX_LENGTH)],
    ['spaces', '    correct horse    '],
    ['only spaces', ' '.repeat(PASSWORD_MIN_LENGTH)],
    ['any Unicode', 'пароль密码كلمة'],
    ['128 emoji, 256 UTF-16 units', '\u{1F600}'.repeat(PASSWORD_MAX_LENGTH)],
  ])('accepts %s', async (_case, password) => {
    await expect(failedRules(NewPasswordBody, password)).resolves.toEqual([]);
  });

  it.each([
    ['one character too few', 'a'.repeat(PASSWORD_MIN_LENGTH - 1)],
    ['one character too many', 'a'.repeat(PASSWORD_MAX_LENGTH + 1)],
    ['4 emoji, 8 UTF-16 units', '\u{1F600}'.repeat(4)],
    ['empty', ''],
  ])('refuses %s', async (_case, password) => {
    await expect(failedRules(NewPasswordBody, password)).resolves.toEqual(['characterLength']);
  });

  it.each([
    ['a number', 12345678],
    ['null', null],
    ['an array', ['password1']],
  ])('refuses %s', async (_case, password) => {
    await expect(failedRules(NewPasswordBody, password)).resolves.toEqual(expect.arrayContaining(['isString']));
  });

  it('says what the bounds are', async () => {
    const [error] = await validate(plainToInstance(NewPasswordBody, { password: 'short' }));

    expect(error.constraints?.characterLength).toBe('password must be between 8 and 128 characters long');
  });
});

describe(IsCurrentPassword.name, () => {
  it('accepts a short password set under an older rule', async () => {
    await expect(failedRules(CurrentPasswordBody, 'abc')).resolves.toEqual([]);
  });

  it.each([
    ['empty', ''],
    ['too long', 'a'.repeat(PASSWORD_MAX_LENGTH + 1)],
  ])('refuses %s', async (_case, password) => {
    await expect(failedRules(CurrentPasswordBody, password)).resolves.toEqual(['characterLength']);
  });
});
