import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager } from 'typeorm';

/** TypeORM's SQLite drivers hand every caller the same single connection (and query runner). */
const SINGLE_CONNECTION_DRIVERS = new Set(['better-sqlite3', 'sqlite']);

/**
 * The one way the module writes to its database: every write, single statement or several, runs in a
 * transaction opened here.
 *
 * On PostgreSQL each transaction takes its own pooled connection, so they run concurrently. On SQLite
 * the driver shares one connection: two overlapping `dataSource.transaction()` calls collide
 * (TransactionAlreadyStartedError), and a write issued outside a transaction while another is open
 * silently joins it (and is rolled back with it). So on SQLite transactions queue up here, one at a time,
 * and nothing writes outside them. The work inside must be database statements only: never hash a
 * password or talk to SMTP while holding the queue, and never call `run` again from inside `work`
 * (on SQLite that would wait for itself).
 */
@Injectable()
export class TransactionRunner {
  private readonly serialised: boolean;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly afterCommitCallbacks = new WeakMap<EntityManager, (() => void)[]>();

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.serialised = SINGLE_CONNECTION_DRIVERS.has(dataSource.options.type);
  }

  /** True on PostgreSQL, where row locks (`FOR UPDATE`, `SKIP LOCKED`) exist and matter. */
  get isPostgres(): boolean {
    return this.dataSource.options.type === 'postgres';
  }

  run<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    if (!this.serialised) return this.transaction(work);
    const result = this.queue.then(() => this.transaction(work));
    // The next transaction waits for this one to end, whether it committed or rolled back.
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Runs `callback` once the transaction of `manager` has committed (at once outside a transaction of
   * this runner): what others may read must not be announced before it is visible to them.
   */
  afterCommit(manager: EntityManager, callback: () => void): void {
    const pending = this.afterCommitCallbacks.get(manager);
    if (pending) pending.push(callback);
    else callback();
  }

  private async transaction<T>(work: (manager: EntityManager) => Promise<T>): Promise<T> {
    const callbacks: (() => void)[] = [];
    const result = await this.dataSource.transaction((manager) => {
      this.afterCommitCallbacks.set(manager, callbacks);
      return work(manager);
    });
    for (const callback of callbacks) callback();
    return result;
  }
}
