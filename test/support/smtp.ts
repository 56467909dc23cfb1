import { ParsedMail, simpleParser } from 'mailparser';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  to: string[];
  /** Envelope sender. */
  from: string;
  subject: string;
  text: string;
  html: string;
  raw: string;
}

export interface TestSmtpOptions {
  /** Recipients refused with a permanent 550, as a server does for a mailbox that does not exist. */
  rejectRecipient?: (address: string) => boolean;
  /**
   * For a server the test stops and brings back: listen on a port below the kernel's ephemeral range
   * (32768 and up on Linux), so that while it is down no other suite's `listen(0)` can be handed its port
   * and answer in its place.
   */
  restartable?: boolean;
}

/** Ports below Linux's default ephemeral range, which `listen(0)` never hands out. */
const RESTARTABLE_PORTS = { first: 20_000, count: 12_000 };

/** A real SMTP server on a free loopback port; the tests read what arrived. */
export class TestSmtpServer {
  readonly messages: ReceivedMail[] = [];
  private server: SMTPServer;
  private boundPort = 0;

  private constructor(private readonly options: TestSmtpOptions) {}

  /** The port it listens on, or last listened on: `listen(port)` brings a stopped server back there. */
  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `smtp://127.0.0.1:${this.boundPort}`;
  }

  static async start(options: TestSmtpOptions = {}): Promise<TestSmtpServer> {
    const smtp = new TestSmtpServer(options);
    if (!options.restartable) {
      await smtp.listen(0);
      return smtp;
    }
    for (let attempt = 0; ; attempt++) {
      const port = RESTARTABLE_PORTS.first + Math.floor(Math.random() * RESTARTABLE_PORTS.count);
      try {
        await smtp.listen(port);
        return smtp;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw error;
      }
    }
  }

  /** Listens (again) on the given port, 0 for any; used to bring a stopped server back. */
  async listen(port: number): Promise<void> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo: (address, _session, callback) => {
        if (this.options.rejectRecipient?.(address.address)) {
          return callback(Object.assign(new Error('550 5.1.1 mailbox unavailable'), { responseCode: 550 }));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw).then((parsed: ParsedMail) => {
            this.messages.push({
              to: session.envelope.rcptTo.map((r) => r.address),
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              raw,
            });
            callback();
          }, callback);
        });
      },
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => resolve());
    });
    this.boundPort = (this.server.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** The first message to `address` matching `filter` that arrives within `timeoutMs`. */
  async waitFor(address: string, filter: (mail: ReceivedMail) => boolean = () => true, timeoutMs = 5000): Promise<ReceivedMail> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => m.to.includes(address) && filter(m));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no mail to ${address} within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  to(address: string): ReceivedMail[] {
    return this.messages.filter((m) => m.to.includes(address));
  }
}

/** An SMTP server that takes `delayMs` to acknowledge each message, as a congested relay does. */
export async function startSlowSmtp(delayMs: number): Promise<{ url: string; received: () => number; stop: () => Promise<void> }> {
  let received = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData: (stream, _session, callback) => {
      stream.resume();
      stream.on('end', () =>
        setTimeout(() => {
          received += 1;
          callback();
        }, delayMs),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `smtp://127.0.0.1:${(server.server.address() as AddressInfo).port}`,
    received: () => received,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The `token` query parameter of the first link in a mail (reset or verification). */
export function tokenFromMail(mail: ReceivedMail): string {
  const link = mail.text.match(/https?:\/\/\S+/)?.[0];
  if (!link) throw new Error('no link in the mail');
  const token = new URL(link).searchParams.get('token');
  if (!token) throw new Error(`no token in ${link}`);
  return token;
}
