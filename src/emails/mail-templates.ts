/** A rendered message: plain text for every client, HTML for those that show it. */
export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

/** A link the reader follows, and how long it works. */
export interface MailedLink {
  url: string;
  validForSeconds: number;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** "24 hours", "30 minutes": whole hours when the lifetime is a multiple of them. */
export function describeLifetime(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) {
    const hours = seconds / 3600;
    return hours === 1 ? '1 hour' : `${hours} hours`;
  }
  const minutes = Math.max(1, Math.round(seconds / 60));
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
}

/** Paragraphs are plain text; `link` is the one element that becomes an anchor in the HTML part. */
function render(appName: string, subject: string, paragraphs: (string | { link: string; label: string })[]): MailContent {
  const text = paragraphs.map((p) => (typeof p === 'string' ? p : p.link)).join('\n\n');
  const html = paragraphs
    .map((p) => (typeof p === 'string' ? escapeHtml(p) : `<a href="${escapeHtml(p.link)}">${escapeHtml(p.label)}</a>`))
    .map((p) => `<p>${p}</p>`)
    .join('\n    ');
  return {
    subject,
    text: `${text}\n\n-- ${appName}\n`,
    html: `<!doctype html>
<html>
  <body style="font-family: sans-serif; line-height: 1.5">
    ${html}
    <p>-- ${escapeHtml(appName)}</p>
  </body>
</html>
`,
  };
}

export function welcomeMail(appName: string, username: string, verification: MailedLink): MailContent {
  return render(appName, `Welcome to ${appName}`, [
    `Hello ${username},`,
    `Your ${appName} account is ready. You can sign in with your email address and password.`,
    `Please confirm that this address is yours by opening this link within ${describeLifetime(verification.validForSeconds)}:`,
    { link: verification.url, label: 'Verify your email address' },
    `If you did not create this account, ignore this email.`,
  ]);
}

export function emailVerificationMail(appName: string, username: string, verification: MailedLink): MailContent {
  return render(appName, `Verify your email address for ${appName}`, [
    `Hello ${username},`,
    `Open this link within ${describeLifetime(verification.validForSeconds)} to confirm that this address belongs to your ${appName} account:`,
    { link: verification.url, label: 'Verify your email address' },
    `If you did not ask for this, ignore this email.`,
  ]);
}

export function passwordResetMail(appName: string, username: string, reset: MailedLink): MailContent {
  return render(appName, `Reset your ${appName} password`, [
    `Hello ${username},`,
    `Someone asked to reset the password of your ${appName} account. ` +
      `Open this link within ${describeLifetime(reset.validForSeconds)} to choose a new one:`,
    { link: reset.url, label: 'Reset your password' },
    'If you did not ask for this, ignore this email: your password stays as it is.',
  ]);
}

/**
 * The notice after a password change or reset. It carries no link at all: a mail that anyone can
 * trigger by changing a password must not hand out a way in, and a phishing copy of it is easier to
 * spot when the real one never asks the reader to click.
 */
export function passwordChangedMail(appName: string, username: string, changedAt: Date): MailContent {
  const when = `${changedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  return render(appName, `Your ${appName} password was changed`, [
    `Hello ${username},`,
    `The password of your ${appName} account was changed on ${when}, and every session signed in before that was ended.`,
    `If you did this, there is nothing else to do. If you did not, someone else knows your password or ` +
      `can read your email: choose a new password with "Forgot password" on the ${appName} sign-in page, ` +
      `and secure this mailbox.`,
  ]);
}

export type SecondFactorEvent = 'mfa-enabled' | 'mfa-disabled' | 'recovery-code-used' | 'identity-linked';

const SECOND_FACTOR_NOTICES: Record<SecondFactorEvent, { subject: string; happened: string }> = {
  'mfa-enabled': { subject: 'Two-factor authentication is on', happened: 'two-factor authentication was turned on, and every other session was ended' },
  'mfa-disabled': { subject: 'Two-factor authentication is off', happened: 'two-factor authentication was turned off' },
  'recovery-code-used': { subject: 'A recovery code was used', happened: 'a recovery code was used to sign in (it cannot be used again)' },
  'identity-linked': {
    subject: 'A sign-in provider was linked',
    happened: 'an account at an OpenID Connect provider was linked, and can now sign in',
  },
};

/** The notices after a change to the second factor. Like the password notice, they carry no link. */
export function secondFactorMail(appName: string, username: string, event: SecondFactorEvent, at: Date): MailContent {
  const when = `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const notice = SECOND_FACTOR_NOTICES[event];
  return render(appName, `${notice.subject} for your ${appName} account`, [
    `Hello ${username},`,
    `On ${when}, ${notice.happened} on your ${appName} account.`,
    `If you did this, there is nothing else to do. If you did not, someone else can sign in as you: ` +
      `choose a new password with "Forgot password" on the ${appName} sign-in page, and secure this mailbox.`,
  ]);
}

function utcMinute(at: Date): string {
  return `${at.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** To the new address: the one way the change happens. */
export function emailChangeConfirmationMail(appName: string, username: string, confirmation: MailedLink): MailContent {
  return render(appName, `Confirm your new email address for ${appName}`, [
    `Hello ${username},`,
    `Someone asked to use this address for the ${appName} account ${username}. ` +
      `Open this link within ${describeLifetime(confirmation.validForSeconds)} to make the change:`,
    { link: confirmation.url, label: 'Confirm your new email address' },
    'If you did not ask for this, ignore this email: nothing changes until the link is opened.',
  ]);
}

/**
 * To the old address. It names neither the new address nor whether it has an account (the requester
 * may not be the owner), and carries no link, like the other security notices.
 */
export function emailChangeRequestedMail(appName: string, username: string, at: Date): MailContent {
  return render(appName, `A change of your ${appName} email address was requested`, [
    `Hello ${username},`,
    `On ${utcMinute(at)}, someone signed in to your ${appName} account asked to change its email address. ` +
      'The change happens only once the link sent to the new address is opened; until then this address stays the account\'s.',
    `If you did this, there is nothing else to do. If you did not, someone else can sign in as you: ` +
      `choose a new password with "Forgot password" on the ${appName} sign-in page, sign out every session, and secure this mailbox.`,
  ]);
}

/** To the owner of an address another account tried to move to: nothing changed, and nothing to click. */
export function emailChangeAddressTakenMail(appName: string, username: string, at: Date): MailContent {
  return render(appName, `Someone tried to use your email address on ${appName}`, [
    `Hello ${username},`,
    `On ${utcMinute(at)}, someone asked to move another ${appName} account to this address. ` +
      'It already belongs to your account, so nothing changed and your account is as it was.',
    'If this was you, sign in with this address instead. If not, there is nothing to do.',
  ]);
}

/** The goodbye: sent to the address the account had, after everything of it was deleted. */
export function accountDeletedMail(appName: string, at: Date): MailContent {
  return render(appName, `Your ${appName} account was deleted`, [
    'Hello,',
    `On ${utcMinute(at)}, the ${appName} account of this address was deleted, as its owner asked, with its sessions, ` +
      'sign-in methods and pending emails. This address may sign up again at any time.',
    `If you did not ask for this, someone else could sign in as you: tell the people who run ${appName}, and secure this mailbox.`,
  ]);
}
