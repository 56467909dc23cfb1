import { fitUsername } from './oidc-accounts';

describe(fitUsername.name, () => {
  it('keeps a name that fits the sign-up pattern', () => {
    expect(fitUsername('ada.lovelace_1-x')).toBe('ada.lovelace_1-x');
    expect(fitUsername('Zoë')).toBe('Zoë');
  });

  it('replaces what the pattern refuses with dashes, trimmed at the ends', () => {
    expect(fitUsername('Ada  Love lace!')).toBe('Ada-Love-lace');
    expect(fitUsername('@ada@')).toBe('ada');
  });

  it('gives up on what is too short, and cuts what is too long', () => {
    expect(fitUsername('ab')).toBeNull();
    expect(fitUsername('!!')).toBeNull();
    expect(fitUsername(null)).toBeNull();
    expect(fitUsername('a'.repeat(80))).toBe('a'.repeat(50));
  });
});
