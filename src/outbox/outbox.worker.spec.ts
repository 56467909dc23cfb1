import { Logger } from '@nestjs/common';
import type { AuthConfig } from '../options/auth-config';
import type { MailOutbox } from './mail-outbox.service';
import type { MailComposer } from './mail-composer';
import type { MailSender } from './mail-sender';
import { OutboxMessage } from './outbox-message.entity';
import { OutboxWorker, retryDelayMs } from './outbox.worker';

const NOW = new Date('2026-05-06T07:08:09.000Z');
const CONTENT = { subject: 'Reset', text: 'https://app.example.test/reset?token=secret-token', html: '<a>link</a>' };

function message(overrides: Partial<OutboxMessage> = {}): OutboxMessage {
  return Object.assign(new OutboxMessage(), {
    id: 41,
    kind: 'password-reset',
    userId: 7,
    recipient: 'ada@example.com',
    status: 'pending',
    attempts: 1,
    ...overrides,
  });
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(check()).toBe(true);
}

describe(retryDelayMs.name, () => {
  it.each([
    [1, 5_000],
    [2, 10_000],
    [3, 20_000],
    [6, 160_000],
    [7, 300_000],
    [9, 300_000],
    [500, 300_000],
  ])('waits after failure %i for %i ms (5 s doubling, capped at 5 minutes)', (failures, expected) => {
    expect(retryDelayMs(failures, 5_000, 300_000)).toBe(expected);
  });
});

describe(OutboxWorker.name, () => {
  let outbox: { claimDue: jest.Mock; markSent: jest.Mock; markForRetry: jest.Mock; markDead: jest.Mock };
  let content: { compose: jest.Mock };
  let mailer: { send: jest.Mock };
  let logLines: string[];
  let sut: OutboxWorker;

  const config = {
    clock: () => NOW,
    mail: { from: 'no-reply@example.test', maxAttempts: 3, retryInitialDelayMs: 5_000, retryMaxDelayMs: 300_000, pollIntervalMs: 5 },
  } as AuthConfig;

  /** Claims `messages` on the first poll and nothing after. */
  function claimOnce(...messages: OutboxMessage[]): void {
    outbox.claimDue.mockResolvedValueOnce(messages);
  }

  beforeEach(() => {
    outbox = {
      claimDue: jest.fn().mockResolvedValue([]),
      markSent: jest.fn().mockResolvedValue(true),
      markForRetry: jest.fn().mockResolvedValue(true),
      markDead: jest.fn().mockResolvedValue(true),
    };
    content = { compose: jest.fn().mockResolvedValue(CONTENT) };
    mailer = { send: jest.fn().mockResolvedValue(undefined) };
    logLines = [];
    for (const level of ['log', 'warn', 'error'] as const) {
      jest.spyOn(Logger.prototype, level).mockImplementation((...args: unknown[]) => {
        logLines.push(String(args[0]));
      });
    }
    sut = new OutboxWorker(outbox as unknown as MailOutbox, content as unknown as MailComposer, mailer as unknown as MailSender, config);
  });

  afterEach(async () => {
    await sut.onModuleDestroy();
    jest.restoreAllMocks();
  });

  it('sends a claimed message to its recipient, marks it sent and logs who and what, never the content', async () => {
    const claimed = message();
    claimOnce(claimed);

    sut.onApplicationBootstrap();
    await until(() => outbox.markSent.mock.calls.length === 1);

    expect(mailer.send).toHaveBeenCalledWith({ to: 'ada@example.com', ...CONTENT });
    expect(outbox.markSent).toHaveBeenCalledWith(claimed);
    expect(logLines).toContain('mail sent id=41 kind=password-reset user_id=7 attempt=1/3');
    expect(logLines.join('\n')).not.toMatch(/token|https?:/);
  });

  it('schedules a failed attempt for retry after the backoff, by the module clock', async () => {
    claimOnce(message({ attempts: 2 }));
    mailer.send.mockRejectedValue(new Error('connect ECONNREFUSED\n127.0.0.1:25'));

    sut.onApplicationBootstrap();
    await until(() => outbox.markForRetry.mock.calls.length === 1);

    expect(outbox.markForRetry).toHaveBeenCalledWith(expect.objectContaining({ id: 41 }), 'connect ECONNREFUSED 127.0.0.1:25', new Date(NOW.getTime() + 10_000));
    expect(logLines).toContain('mail failed id=41 kind=password-reset user_id=7 attempt=2/3 retry_in_ms=10000: connect ECONNREFUSED 127.0.0.1:25');
  });

  it('keeps addresses a server quotes out of the log and the outbox', async () => {
    claimOnce(message());
    mailer.send.mockRejectedValue(new Error('550 5.1.1 <ada@example.com>: Recipient address rejected'));

    sut.onApplicationBootstrap();
    await until(() => outbox.markForRetry.mock.calls.length === 1);

    expect(outbox.markForRetry.mock.calls[0][1]).toBe('550 5.1.1 <[address]>: Recipient address rejected');
    expect(logLines.join('\n')).not.toContain('ada@example.com');
  });

  it('marks the message dead when its last attempt fails', async () => {
    claimOnce(message({ attempts: 3 }));
    content.compose.mockRejectedValue(new Error('the account no longer exists'));

    sut.onApplicationBootstrap();
    await until(() => outbox.markDead.mock.calls.length === 1);

    expect(outbox.markDead).toHaveBeenCalledWith(expect.objectContaining({ id: 41 }), 'the account no longer exists');
    expect(mailer.send).not.toHaveBeenCalled();
    expect(outbox.markForRetry).not.toHaveBeenCalled();
  });

  it('keeps the other messages of a batch going when one cannot be recorded', async () => {
    claimOnce(message({ id: 1 }), message({ id: 2 }));
    outbox.markSent.mockRejectedValueOnce(new Error('database gone')).mockResolvedValueOnce(true);

    sut.onApplicationBootstrap();
    await until(() => outbox.markSent.mock.calls.length === 2);
    await until(() => logLines.some((line) => line.startsWith('mail outcome not recorded id=1 ')));

    expect(logLines).toContain('mail sent id=2 kind=password-reset user_id=7 attempt=1/3');
  });

  it('keeps polling after a failed poll', async () => {
    outbox.claimDue.mockRejectedValueOnce(new Error('connection terminated'));
    claimOnce(message());

    sut.onApplicationBootstrap();
    await until(() => outbox.markSent.mock.calls.length === 1);

    expect(logLines).toContain('outbox poll failed: connection terminated');
  });

  it('waits for the send in flight when the module stops, then polls no more', async () => {
    let finishSend: () => void = () => undefined;
    mailer.send.mockReturnValue(new Promise<void>((resolve) => (finishSend = resolve)));
    claimOnce(message());
    sut.onApplicationBootstrap();
    await until(() => mailer.send.mock.calls.length === 1);

    let stopped = false;
    const stopping = sut.onModuleDestroy().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);

    finishSend();
    await stopping;
    expect(outbox.markSent).toHaveBeenCalledTimes(1);
    const polls = outbox.claimDue.mock.calls.length;
    sut.wake();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(outbox.claimDue).toHaveBeenCalledTimes(polls);
  });
});
