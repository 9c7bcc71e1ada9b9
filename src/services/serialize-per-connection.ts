import { AsyncLocalStorage } from 'node:async_hooks';

const tails = new WeakMap<object, Promise<unknown>>();
const held = new AsyncLocalStorage<ReadonlySet<object>>();

/**
 * Runs `fn` after every earlier call for the same `key` has settled.
 *
 * TypeORM gives every SQLite query runner the same connection, so two transactions of
 * one process would interleave on it (the second BEGIN fails, or one's statements land
 * in the other's transaction). The service therefore runs its own SQLite work one unit
 * at a time per DataSource.
 *
 * A `reentrant` unit runs user code (`work` in `commitWithLocks`): a call made from
 * inside it runs at once instead of waiting for itself. Only those units pay for
 * AsyncLocalStorage, which on Node 20 slows every promise of the process once used.
 */
export function serializePerConnection<T>(key: object, fn: () => Promise<T>, reentrant = false): Promise<T> {
  const outer = held.getStore();
  if (outer?.has(key)) return fn();
  const run = reentrant ? (): Promise<T> => held.run(new Set(outer ?? []).add(key), fn) : fn;
  const result = (tails.get(key) ?? Promise.resolve()).then(run, run);
  tails.set(
    key,
    result.catch(() => undefined),
  );
  return result;
}
