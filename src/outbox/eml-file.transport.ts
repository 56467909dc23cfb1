import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { SentMessageInfo, Transport } from 'nodemailer';
import type MailMessage from 'nodemailer/lib/mailer/mail-message';

/**
 * A nodemailer transport that writes each message as an `.eml` file, for running without an SMTP server.
 * The log names the file and nothing else: a reset link must never reach the logs.
 */
export class EmlFileTransport implements Transport<SentMessageInfo> {
  readonly name = 'eml-file';
  readonly version = '1.0.0';
  private readonly logger = new Logger(EmlFileTransport.name);
  private readonly directory: string;

  constructor(directory: string) {
    this.directory = resolve(directory);
  }

  send(mail: MailMessage, callback: (error: Error | null, info: SentMessageInfo) => void): void {
    this.write(mail).then(
      (info) => callback(null, info),
      (error: Error) => callback(error, undefined as unknown as SentMessageInfo),
    );
  }

  private async write(mail: MailMessage): Promise<SentMessageInfo> {
    const raw = await mail.message.build();
    const file = join(this.directory, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}.eml`);
    await mkdir(this.directory, { recursive: true });
    await writeFile(file, raw, { mode: 0o600 });
    this.logger.log(`email written to ${file}`);
    return { envelope: mail.message.getEnvelope(), messageId: mail.message.messageId(), path: file };
  }
}
