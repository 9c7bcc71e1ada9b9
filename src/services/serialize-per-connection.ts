import { AsyncLocalStorage } from 'node:async_hooks';

/** Units queued or running for one key, and the promise the next unit waits for. */
interface Queue {
  size: number;
  tail: Promise<unknown>;
  /** The reentrant unit running now, if any: only code it started may run nested in it. */
  running?: object;
}

/** Options of {@link serializePerConnection}. */
export interface SerializeOptions {
  /**
   * The unit runs the caller's code (`work` in `commitWithLocks`): a call made from inside
   * it runs at once instead of waiting for itself. Only such units pay for
   * AsyncLocalStorage, which on Node 20 slows every promise of the process once used.
   */
  readonly reentrant?: boolean;
  /**
   * How long the unit may wait for its turn, in milliseconds; then it rejects with
   * `timeoutError()` and never runs. Default: no limit.
   */
  readonly maxWaitMs?: number;
  readonly timeoutError?: () => unknown;
}

const queues = new WeakMap<object, Queue>();
/**
 * Per key, the reentrant unit the current code was started from. A unit's code can
 * outlive it (a timer or a promise it left behind keeps this context), so a call counts
 * as nested only while that very unit is the one running: otherwise it would join a
 * later unit's transaction, and vanish with its rollback.
 */
const held = new AsyncLocalStorage<ReadonlyMap<object, object>>();

/**
 * Runs `fn` after every earlier call for the same `key` has settled; `fn` learns whether
 * it runs nested inside a reentrant unit.
 *
 * A connection runs one transaction at a time: two units of one process would
 * interleave on it (the second BEGIN fails, or one's statements land in the other's
 * transaction). So units that share one connection run one at a time (the service's
 * SQLite units; calls on one caller's transaction). With nothing queued, `fn` starts at
 * once: the common case costs no extra turn of the event loop.
 */
export function serializePerConnection<T>(
  key: object,
  fn: (nested: boolean) => Promise<T>,
  options: SerializeOptions = {},
): Promise<T> {
  const outer = held.getStore();
  let queue = queues.get(key);
  if (outer !== undefined && isRunning(queue, outer.get(key))) return fn(true);
  if (queue === undefined) queues.set(key, (queue = { size: 0, tail: Promise.resolve() }));
  const own = queue;
  const run = options.reentrant
    ? (): Promise<T> => {
        const unit = {};
        own.running = unit;
        const ended = (): void => {
          if (own.running === unit) own.running = undefined;
        };
        const result = held.run(new Map(outer ?? []).set(key, unit), () => fn(false));
        result.then(ended, ended);
        return result;
      }
    : (): Promise<T> => fn(false);

  let result: Promise<T>;
  let turn: Promise<unknown>;
  if (queue.size === 0) {
    result = run();
    turn = result;
  } else if (options.maxWaitMs === undefined) {
    result = queue.tail.then(run);
    turn = result;
  } else {
    ({ result, turn } = runWithinWait(queue.tail, run, options.maxWaitMs, options.timeoutError));
  }
  queue.size += 1;
  const settled = (): void => {
    queue.size -= 1;
  };
  // The next unit waits for this one to finish, or for its place to pass if it gave up.
  queue.tail = turn.then(settled, settled);
  return result;
}

/**
 * Runs `fn` as outside every unit, whatever the code that scheduled it ran in: for work
 * of the service's own that a timer starts (a session's heartbeat), which would otherwise
 * inherit the unit its timer was set in and run inside it, or beside a later unit.
 */
export function outsideUnits<T>(fn: () => T): T {
  return held.exit(fn);
}

/**
 * True when no unit of `key` is queued or running, so that one run now, synchronously,
 * is what {@link serializePerConnection} would do with it (and nothing can interleave
 * with synchronous code).
 */
export function isIdle(key: object): boolean {
  const queue = queues.get(key);
  return queue === undefined || queue.size === 0;
}

/** True when the current code runs inside the reentrant unit of `key` running now (see {@link serializePerConnection}). */
export function insideUnitOf(key: object): boolean {
  return isRunning(queues.get(key), held.getStore()?.get(key));
}

function isRunning(queue: Queue | undefined, unit: object | undefined): boolean {
  return unit !== undefined && queue?.running === unit;
}

function runWithinWait<T>(
  previous: Promise<unknown>,
  run: () => Promise<T>,
  maxWaitMs: number,
  timeoutError: (() => unknown) | undefined,
): { result: Promise<T>; turn: Promise<unknown> } {
  let gaveUp = false;
  const turn = previous.then(() => (gaveUp ? undefined : run()));
  const result = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      gaveUp = true;
      reject(timeoutError?.() ?? new Error(`waited ${maxWaitMs} ms for the units before this one`));
    }, maxWaitMs);
    // Once its turn has come the unit runs to its end: no timeout after that.
    void previous.then(() => clearTimeout(timer));
    turn.then(
      (value) => gaveUp || resolve(value as T),
      (error: unknown) => gaveUp || reject(error),
    );
  });
  return { result, turn };
}
