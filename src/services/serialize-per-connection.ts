import { AsyncLocalStorage } from 'node:async_hooks';

/** Units queued or running for one key, and the promise the next unit waits for. */
interface Queue {
  size: number;
  tail: Promise<unknown>;
}

const queues = new WeakMap<object, Queue>();
const held = new AsyncLocalStorage<ReadonlySet<object>>();

/**
 * Runs `fn` after every earlier call for the same `key` has settled; `fn` learns whether
 * it runs nested inside a reentrant unit.
 *
 * TypeORM gives every SQLite query runner the same connection, so two transactions of
 * one process would interleave on it (the second BEGIN fails, or one's statements land
 * in the other's transaction). The service therefore runs its own SQLite work one unit
 * at a time per DataSource. With nothing queued, `fn` starts at once: the common case
 * costs no extra turn of the event loop.
 *
 * A `reentrant` unit runs user code (`work` in `commitWithLocks`): a call made from
 * inside it runs at once instead of waiting for itself. Only those units pay for
 * AsyncLocalStorage, which on Node 20 slows every promise of the process once used.
 */
export function serializePerConnection<T>(
  key: object,
  fn: (nested: boolean) => Promise<T>,
  reentrant = false,
): Promise<T> {
  const outer = held.getStore();
  if (outer?.has(key)) return fn(true);
  const run = reentrant
    ? (): Promise<T> => held.run(new Set(outer ?? []).add(key), () => fn(false))
    : (): Promise<T> => fn(false);
  let queue = queues.get(key);
  if (queue === undefined) queues.set(key, (queue = { size: 0, tail: Promise.resolve() }));
  const result = queue.size === 0 ? run() : queue.tail.then(run, run);
  queue.size += 1;
  const settled = (): void => {
    queue.size -= 1;
  };
  queue.tail = result.then(settled, settled);
  return result;
}
