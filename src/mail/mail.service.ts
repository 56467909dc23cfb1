import { Inject, Injectable, Logger } from '@nestjs/common';
import { MailerService } from '@nestjs-modules/mailer';
import { AUTH_CONFIG, AuthConfig } from '../auth/auth-config';
import { MailContent, passwordResetMail, welcomeMail } from './mail-templates';

interface Recipient {
  id: number;
  email: string;
  username: string;
}

/**
 * What the auth flows send. Sending happens in the background: the request that causes a message never
 * waits for SMTP, so a slow or broken mail server neither slows nor fails it, and response time does not
 * reveal whether a message was sent at all (forgot-password must not reveal which emails have accounts).
 * A failure is logged with the user id; delivery is not retried yet.
 */
@Injectable()
export class MailService {
  private readonly logger = new Logger(MailService.name);
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly mailer: MailerService,
    @Inject(AUTH_CONFIG) private readonly config: AuthConfig,
  ) {}

  sendWelcome(user: Recipient): void {
    this.sendInBackground('welcome', user, welcomeMail(this.config.appName, user.username));
  }

  sendPasswordReset(user: Recipient, token: string): void {
    const link = new URL(this.config.passwordResetUrl);
    link.searchParams.set('token', token);
    const validMinutes = Math.round(this.config.passwordResetTokenTtlSeconds / 60);
    this.sendInBackground(
      'password-reset',
      user,
      passwordResetMail(this.config.appName, user.username, link.toString(), validMinutes),
    );
  }

  /** Resolves once every message started so far has been handed over or has failed (tests, shutdown). */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  private sendInBackground(kind: string, user: Recipient, content: MailContent): void {
    const sending = this.mailer
      .sendMail({ to: user.email, from: this.config.mail.from, ...content })
      .then(
        () => this.logger.log(`mail sent kind=${kind} user_id=${user.id}`),
        (error: Error) => this.logger.error(`mail failed kind=${kind} user_id=${user.id}: ${error.message}`),
      )
      .finally(() => this.inFlight.delete(sending));
    this.inFlight.add(sending);
  }
}
