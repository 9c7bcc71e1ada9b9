import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { SLOT_LOCK_CHANNELS } from '../../src';
import type { ContentionCount } from './closed-loop';

/**
 * Counts the package's contention retries (deadlocks, lock-wait timeouts, busy) from
 * its own `retry` diagnostics channel, whichever path the statement took (on MariaDB
 * the one-statement path bypasses TypeORM's query runner, so a TypeORM logger would
 * miss them). Only one contender runs at a time, so a slice's count is its own.
 * Returns the function that stops counting.
 */
export function countPackageRetries(count: ContentionCount): () => void {
  const onRetry = (): void => {
    count.errors += 1;
  };
  subscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
  return () => unsubscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
}
