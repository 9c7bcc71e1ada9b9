import type { ContentionCount } from './closed-loop';

/** Attempts at most, before a raw contender gives up on contention and fails the run. */
const MAX_ATTEMPTS = 1000;
/** Attempts retried at once, before pausing between attempts. */
const IMMEDIATE_ATTEMPTS = 3;
/** Longest pause between two attempts, in milliseconds. */
const MAX_PAUSE_MS = 50;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The cheapest client's retry policy for the raw contenders: on contention (deadlock,
 * lock-wait timeout) retry at once, and from the fourth attempt on after a random pause
 * of up to 2^n ms (at most 50 ms), so that callers that keep deadlocking one another (a
 * transaction of one INSERT per key against the DELETEs of others does) cannot livelock.
 * Counts every retry; anything else, or the 1000th contention error, is thrown.
 */
export async function retryAtOnce<T>(
  count: ContentionCount,
  isContention: (error: unknown) => boolean,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let attempts = 1; ; attempts += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isContention(error) || attempts >= MAX_ATTEMPTS) throw error;
      count.errors += 1;
      if (attempts >= IMMEDIATE_ATTEMPTS) {
        await sleep(Math.random() * Math.min(MAX_PAUSE_MS, 2 ** (attempts - IMMEDIATE_ATTEMPTS)));
      }
    }
  }
}
