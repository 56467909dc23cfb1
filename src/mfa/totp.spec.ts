import { base32Decode, base32Encode, hotp, matchingStep, otpauthUrl, stepAt } from './totp';

describe('TOTP (RFC 6238) and HOTP (RFC 4226)', () => {
  // RFC 4226 Appendix D: the secret "12345678901234567890" and its first ten HOTP values.
  const rfcSecret = Buffer.from('12345678901234567890');
  const rfc4226 = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];

  it.each(rfc4226.map((code, counter) => [counter, code]))('HOTP counter %i is %s', (counter, code) => {
    expect(hotp(rfcSecret, counter)).toBe(code);
  });

  // RFC 6238 Appendix B, SHA-1 rows, last six digits of the eight-digit values.
  it.each([
    [59, '287082'],
    [1111111109, '081804'],
    [1111111111, '050471'],
    [1234567890, '005924'],
    [2000000000, '279037'],
    [20000000000, '353130'],
  ])('TOTP at %i s is %s', (seconds, code) => {
    expect(hotp(rfcSecret, stepAt(seconds * 1000))).toBe(code);
  });

  it('accepts one step of drift either way and no more, and says which step matched', () => {
    const now = 1_800_000_000_000;
    const step = stepAt(now);
    expect(matchingStep(rfcSecret, hotp(rfcSecret, step), now)).toBe(step);
    expect(matchingStep(rfcSecret, hotp(rfcSecret, step - 1), now)).toBe(step - 1);
    expect(matchingStep(rfcSecret, hotp(rfcSecret, step + 1), now)).toBe(step + 1);
    expect(matchingStep(rfcSecret, hotp(rfcSecret, step - 2), now)).toBeNull();
    expect(matchingStep(rfcSecret, hotp(rfcSecret, step + 2), now)).toBeNull();
  });

  it.each([[''], ['12345'], ['1234567'], ['12345a'], [' 123456'], ['１２３４５６']])('refuses the malformed code %j', (code) => {
    expect(matchingStep(rfcSecret, code, Date.now())).toBeNull();
  });

  it('round-trips base32 (RFC 4648 test vectors, unpadded)', () => {
    for (const [plain, encoded] of [['f', 'MY'], ['fo', 'MZXQ'], ['foo', 'MZXW6'], ['foob', 'MZXW6YQ'], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI']]) {
      expect(base32Encode(Buffer.from(plain))).toBe(encoded);
      expect(base32Decode(encoded).toString()).toBe(plain);
    }
  });

  it('writes the key URI authenticator apps read', () => {
    expect(otpauthUrl('Acme Auth', 'ada@example.com', 'JBSWY3DPEHPK3PXP')).toBe(
      'otpauth://totp/Acme%20Auth:ada%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Acme+Auth&algorithm=SHA1&digits=6&period=30',
    );
  });
});
