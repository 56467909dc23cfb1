import type { DataSource, EntityManager } from 'typeorm';
import { TransactionRunner } from './transaction-runner';

/** A DataSource whose transactions take a few ticks and record how many were open at once. */
function dataSourceMock(type: string) {
  const state = { open: 0, mostOpenAtOnce: 0 };
  const manager = {} as EntityManager;
  const dataSource = {
    options: { type },
    transaction: jest.fn(async (work: (m: EntityManager) => Promise<unknown>) => {
      state.open += 1;
      state.mostOpenAtOnce = Math.max(state.mostOpenAtOnce, state.open);
      try {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return await work(manager);
      } finally {
        state.open -= 1;
      }
    }),
  };
  return { dataSource: dataSource as unknown as DataSource, state, manager };
}

describe(TransactionRunner.name, () => {
  it.each(['better-sqlite3', 'sqlite'])('runs transactions on %s one at a time, in order', async (type) => {
    const { dataSource, state } = dataSourceMock(type);
    const sut = new TransactionRunner(dataSource);
    const order: number[] = [];

    await Promise.all([1, 2, 3, 4].map((n) => sut.run(async () => order.push(n))));

    expect(state.mostOpenAtOnce).toBe(1);
    expect(order).toEqual([1, 2, 3, 4]);
  });

  it('runs transactions on postgres side by side', async () => {
    const { dataSource, state } = dataSourceMock('postgres');
    const sut = new TransactionRunner(dataSource);

    await Promise.all([1, 2, 3].map(() => sut.run(async () => undefined)));

    expect(state.mostOpenAtOnce).toBe(3);
  });

  it('hands the work the transaction manager and returns its result', async () => {
    const { dataSource, manager } = dataSourceMock('better-sqlite3');
    const sut = new TransactionRunner(dataSource);

    await expect(sut.run(async (m) => (m === manager ? 'same manager' : 'another'))).resolves.toBe('same manager');
  });

  it('passes a failure on and lets the next transaction run', async () => {
    const { dataSource } = dataSourceMock('better-sqlite3');
    const sut = new TransactionRunner(dataSource);
    const failure = new Error('constraint');

    const failed = sut.run(async () => {
      throw failure;
    });
    const next = sut.run(async () => 'ran');

    await expect(failed).rejects.toBe(failure);
    await expect(next).resolves.toBe('ran');
  });

  it.each([
    ['postgres', true],
    ['better-sqlite3', false],
  ])('knows whether row locks exist (%s: %s)', (type, expected) => {
    expect(new TransactionRunner(dataSourceMock(type).dataSource).isPostgres).toBe(expected);
  });
});
