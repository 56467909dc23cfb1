/** Thrown when a `WorkLimiter` already has as much waiting work as it accepts. */
export class QueueFullError extends Error {
  constructor() {
    super('work queue is full');
  }
}

/**
 * Runs at most `maxRunning` tasks at once and lets at most `maxQueued` more wait; beyond that it refuses
 * at once, so a flood costs a quick refusal instead of memory and ever longer waits.
 */
export class WorkLimiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly maxRunning: number,
    private readonly maxQueued: number,
  ) {}

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Tasks holding a slot. */
  get inFlight(): number {
    return this.running;
  }

  /** True when a task handed over now would be refused. */
  get full(): boolean {
    return this.running >= this.maxRunning && this.waiting.length >= this.maxQueued;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxRunning) {
      if (this.waiting.length >= this.maxQueued) throw new QueueFullError();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so `running` never dips and lets a newcomer jump the queue.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
