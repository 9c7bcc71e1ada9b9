import { AsyncLocalStorage } from 'node:async_hooks';

const tails = new WeakMap<object, Promise<unknown>>();
const held = new AsyncLocalStorage<ReadonlySet<object>>();

/**
 * Runs `fn` after every earlier call for the same `key` has settled.
 *
 * TypeORM gives every SQLite query runner the same connection, so two transactions of
 * one process would interleave on it (the second BEGIN fails, or one's statements land
 * in the other's transaction). The service therefore runs its own SQLite work one unit
 * at a time per DataSource. A call made from inside a unit (say `work` in
 * `commitWithLocks`) runs at once instead of waiting for itself.
 */
export function serializePerConnection<T>(key: object, fn: () => Promise<T>): Promise<T> {
  const outer = held.getStore();
  if (outer?.has(key)) return fn();
  const inner = new Set(outer ?? []).add(key);
  const run = (): Promise<T> => held.run(inner, fn);
  const result = (tails.get(key) ?? Promise.resolve()).then(run, run);
  tails.set(
    key,
    result.catch(() => undefined),
  );
  return result;
}
