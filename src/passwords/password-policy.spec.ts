import { dictionary } from '@zxcvbn-ts/language-common';
import { ValidationFailedException } from '../common/exceptions';
import { PasswordPolicy, PasswordPolicyMessages } from './password-policy';

const owner = { email: 'ada.lovelace@example.com', username: 'countess' };

describe(PasswordPolicy.name, () => {
  const sut = new PasswordPolicy();

  it('ships at least the 10,000 most common passwords, most common first', () => {
    const list = dictionary['passwords-common'];
    expect(list.length).toBeGreaterThanOrEqual(10_000);
    expect(list.slice(0, 2)).toEqual(['123456', 'password']);
  });

  it.each(['password123', 'PASSWORD123', 'qwertyuiop', 'iloveyou1', 'baseball', 'trustno1'])('refuses %p as common', (password) => {
    expect(sut.problem(password, owner)).toBe(PasswordPolicyMessages.COMMON);
  });

  it('refuses the 10,000th most common password too', () => {
    expect(sut.problem(dictionary['passwords-common'][9_999], owner)).toBe(PasswordPolicyMessages.COMMON);
  });

  it.each(['my countess secret', 'COUNTESS-forever', 'ada.lovelace!2026', 'Ada.Lovelace rocks'])(
    'refuses %p, built from the account identifiers',
    (password) => {
      expect(sut.problem(password, owner)).toBe(PasswordPolicyMessages.CONTAINS_IDENTIFIER);
    },
  );

  it('ignores identifiers too short to matter', () => {
    expect(sut.problem('salad dressing 42', { email: 'al@example.com', username: 'jo' })).toBeNull();
  });

  it.each(['correct horse battery staple!', 'tr0ub4dour&3 but longer', 'кириллица пароль', '\u{1F512}\u{1F511} vault door'])(
    'accepts %p, with no composition rules',
    (password) => {
      expect(sut.problem(password, owner)).toBeNull();
    },
  );

  it('throws a 422 naming the field, with a reason the user can act on', () => {
    const error = (() => {
      try {
        sut.assertAcceptable('new_password', 'password123', owner);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValidationFailedException);
    expect((error as ValidationFailedException).getStatus()).toBe(422);
    expect((error as ValidationFailedException).errors).toEqual([
      { field: 'new_password', message: `new_password ${PasswordPolicyMessages.COMMON}` },
    ]);
  });
});
