import { QueueFullError, WorkLimiter } from './bounded-queue';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe(WorkLimiter.name, () => {
  it('runs no more than maxRunning tasks at once, in arrival order', async () => {
    const sut = new WorkLimiter(2, 10);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const gates = Array.from({ length: 5 }, deferred);
    const tasks = gates.map((gate, i) =>
      sut.run(async () => {
        started.push(i);
        peak = Math.max(peak, ++running);
        await gate.promise;
        running--;
      }),
    );
    for (const gate of gates) {
      await new Promise((r) => setImmediate(r));
      gate.resolve();
    }
    await Promise.all(tasks);

    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4]);
  });

  it('refuses at once when maxQueued tasks already wait', async () => {
    const sut = new WorkLimiter(1, 1);
    const gate = deferred();
    const first = sut.run(() => gate.promise);
    const second = sut.run(async () => 'second');

    await expect(sut.run(async () => 'third')).rejects.toBeInstanceOf(QueueFullError);
    gate.resolve();
    await first;
    await expect(second).resolves.toBe('second');
    await expect(sut.run(async () => 'after')).resolves.toBe('after');
  });

  it('frees the slot when a task fails', async () => {
    const sut = new WorkLimiter(1, 0);
    await expect(sut.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await expect(sut.run(async () => 'next')).resolves.toBe('next');
  });
});

describe(`${WorkLimiter.name}.full`, () => {
  it('says whether a task handed over now would be refused', async () => {
    const sut = new WorkLimiter(1, 1);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    expect(sut.full).toBe(false);
    const first = sut.run(() => gate);
    expect(sut.full).toBe(false);
    const second = sut.run(async () => undefined);
    expect(sut.full).toBe(true);
    release();
    await Promise.all([first, second]);
    expect(sut.full).toBe(false);
  });
});
