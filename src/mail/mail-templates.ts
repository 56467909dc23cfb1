/** A rendered message: plain text for every client, HTML for those that show it. */
export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function layout(appName: string, paragraphs: string[]): string {
  const body = paragraphs.map((p) => `<p>${p}</p>`).join('\n    ');
  return `<!doctype html>
<html>
  <body style="font-family: sans-serif; line-height: 1.5">
    ${body}
    <p>-- ${escapeHtml(appName)}</p>
  </body>
</html>
`;
}

export function welcomeMail(appName: string, username: string): MailContent {
  return {
    subject: `Welcome to ${appName}`,
    text: `Hello ${username},\n\nYour ${appName} account is ready. You can sign in with your email address and password.\n\n-- ${appName}\n`,
    html: layout(appName, [
      `Hello ${escapeHtml(username)},`,
      `Your ${escapeHtml(appName)} account is ready. You can sign in with your email address and password.`,
    ]),
  };
}

export function passwordResetMail(
  appName: string,
  username: string,
  resetLink: string,
  validMinutes: number,
): MailContent {
  const ignore = 'If you did not ask for this, ignore this email: your password stays as it is.';
  return {
    subject: `Reset your ${appName} password`,
    text:
      `Hello ${username},\n\nSomeone asked to reset the password of your ${appName} account. ` +
      `Open this link within ${validMinutes} minutes to choose a new one:\n\n${resetLink}\n\n${ignore}\n\n-- ${appName}\n`,
    html: layout(appName, [
      `Hello ${escapeHtml(username)},`,
      `Someone asked to reset the password of your ${escapeHtml(appName)} account. ` +
        `Open this link within ${validMinutes} minutes to choose a new one:`,
      `<a href="${escapeHtml(resetLink)}">Reset your password</a>`,
      ignore,
    ]),
  };
}
