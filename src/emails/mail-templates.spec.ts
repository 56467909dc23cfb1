import {
  accountDeletedMail,
  describeLifetime,
  emailChangeAddressTakenMail,
  emailChangeConfirmationMail,
  emailChangeRequestedMail,
  emailVerificationMail,
  passwordChangedMail,
  passwordResetMail,
  welcomeMail,
} from './mail-templates';

const LINK = { url: 'https://app.example.test/verify?token=abc&lang=en', validForSeconds: 86_400 };

describe(describeLifetime.name, () => {
  it.each([
    [3600, '1 hour'],
    [86_400, '24 hours'],
    [1800, '30 minutes'],
    [5400, '90 minutes'],
    [60, '1 minute'],
    [20, '1 minute'],
  ])('says %i seconds as %p', (seconds, expected) => {
    expect(describeLifetime(seconds)).toBe(expected);
  });
});

describe('mail templates', () => {
  it.each([
    ['welcome', welcomeMail('Acme', 'ada', LINK)],
    ['verification', emailVerificationMail('Acme', 'ada', LINK)],
    ['reset', passwordResetMail('Acme', 'ada', LINK)],
    ['email change', emailChangeConfirmationMail('Acme', 'ada', LINK)],
  ])('%s: names the app and carries the link in both parts, escaped in the HTML', (_kind, mail) => {
    expect(mail.subject).toContain('Acme');
    expect(mail.text).toContain(LINK.url);
    expect(mail.html).toContain('href="https://app.example.test/verify?token=abc&#38;lang=en"');
    expect(mail.text).toContain('24 hours');
    expect(mail.text.trimEnd().endsWith('-- Acme')).toBe(true);
  });

  it('escapes what the user chose before it reaches the HTML', () => {
    const mail = welcomeMail('Acme', '<img src=x onerror=alert(1)>', LINK);

    expect(mail.html).not.toContain('<img');
    expect(mail.html).toContain('&#60;img src=x onerror=alert(1)&#62;');
  });

  it('says when the password changed, and carries no link', () => {
    const mail = passwordChangedMail('Acme', 'ada', new Date('2026-11-25T14:51:26.000Z'));

    expect(mail.subject).toBe('Your Acme password was changed');
    expect(mail.text).toContain('2026-11-25 14:51 UTC');
    expect(`${mail.text}${mail.html}`).not.toMatch(/https?:|href=|token/i);
  });

  it.each([
    ['the email change notice to the old address', emailChangeRequestedMail('Acme', 'ada', new Date('2026-11-25T14:51:26.000Z'))],
    ['the notice to the holder of the address', emailChangeAddressTakenMail('Acme', 'ada', new Date('2026-11-25T14:51:26.000Z'))],
    ['the goodbye', accountDeletedMail('Acme', new Date('2026-11-25T14:51:26.000Z'))],
  ])('%s says when, names the app, and carries no link', (_kind, mail) => {
    expect(mail.subject).toContain('Acme');
    expect(mail.text).toContain('2026-11-25 14:51 UTC');
    expect(mail.text).not.toMatch(/https?:/);
    expect(mail.html).not.toContain('<a ');
  });

  it('escapes the username in the email change mails', () => {
    const evil = '<img src=x onerror=alert(1)>';
    for (const mail of [emailChangeConfirmationMail('Acme', evil, LINK), emailChangeRequestedMail('Acme', evil, new Date()), emailChangeAddressTakenMail('Acme', evil, new Date())]) {
      expect(mail.html).not.toContain('<img');
    }
  });
});
