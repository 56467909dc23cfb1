import { readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setPriority } from 'node:os';

/**
 * Lowers the scheduling priority of libuv's thread pool, where argon2 hashes, so that on a busy machine
 * the event loop (every cheap request) runs first and hashing takes the CPU that is left. Without it a
 * sign-in flood keeps both cores busy hashing and a cheap route's p99 goes up tenfold.
 *
 * Linux only (a thread is a task whose priority `setpriority` sets alone); elsewhere a no-op. It must run
 * before anything uses the pool: the pool's threads are told apart as the tasks its first use creates.
 * Returns how many threads were lowered.
 */
export async function lowerThreadPoolPriority(niceness = 19): Promise<number> {
  if (process.platform !== 'linux') return 0;
  const tasks = () => readdirSync('/proc/self/task');
  const before = new Set(tasks());
  await stat(__filename); // the first queued work item starts every thread of the pool
  const pool = tasks().filter((tid) => !before.has(tid));
  for (const tid of pool) setPriority(Number(tid), niceness);
  return pool.length;
}
