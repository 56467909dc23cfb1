import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { createTransport, type Transporter } from 'nodemailer';
import { AUTH_CONFIG, AuthConfig } from '../options/auth-config';
import { EmlFileTransport } from './eml-file.transport';

/** One message is given up after this long (the SMTP socket timeouts below give up first). */
export const MAIL_SEND_TIMEOUT_MS = 30_000;

export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/**
 * Hands a message to nodemailer: SMTP when `mail.smtpUrl` is set, else an `.eml` file per message. A hung
 * SMTP server must not hold a send (and its claim on the message) for nodemailer's default minutes.
 */
@Injectable()
export class MailSender implements OnModuleDestroy {
  private readonly transporter: Transporter;

  constructor(@Inject(AUTH_CONFIG) private readonly config: AuthConfig) {
    const { smtpUrl, outputDir } = config.mail;
    this.transporter = smtpUrl
      ? createTransport({ url: smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 })
      : createTransport(new EmlFileTransport(outputDir));
  }

  async send(mail: OutgoingMail): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the mail server within ${MAIL_SEND_TIMEOUT_MS} ms`)), MAIL_SEND_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.transporter.sendMail({ from: this.config.mail.from, ...mail }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  onModuleDestroy(): void {
    this.transporter.close();
  }
}
