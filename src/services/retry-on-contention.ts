import type { RetryOptions } from './slot-lock.options';

/** The contention error that retrying did not get past, and how many attempts were made. */
export class ContentionExhausted {
  constructor(
    readonly error: unknown,
    readonly attempts: number,
  ) {}
}

/**
 * Runs `attempt` until it succeeds, throws something that is not contention (passed
 * through as is), or runs out of attempts (then throws {@link ContentionExhausted}).
 *
 * Full jitter (a random wait between 0 and an exponentially growing ceiling) keeps
 * callers that collided once from colliding again in lockstep.
 */
export async function retryOnContention<T>(
  retry: Readonly<RetryOptions>,
  isContention: (error: unknown) => boolean,
  attempt: (attemptNumber: number) => Promise<T>,
  onRetry?: (error: unknown, attemptNumber: number) => void,
): Promise<T> {
  for (let attemptNumber = 1; ; attemptNumber += 1) {
    try {
      return await attempt(attemptNumber);
    } catch (error) {
      if (!isContention(error)) throw error;
      if (attemptNumber >= retry.attempts) throw new ContentionExhausted(error, attemptNumber);
      onRetry?.(error, attemptNumber);
      await sleep(backoffMs(retry, attemptNumber));
    }
  }
}

/** The wait before attempt `attemptNumber + 1`. */
export function backoffMs(retry: Readonly<RetryOptions>, attemptNumber: number): number {
  const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attemptNumber - 1));
  return Math.random() * ceiling;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The longest pause between two tries of {@link waitOutBusy}, in milliseconds. */
const BUSY_POLL_MAX_MS = 50;

/**
 * Runs `attempt` until it succeeds, throws something that is not "busy", or `deadline`
 * (a `Date.now()` time) has passed: then throws the last busy error, which the
 * contention retries around it judge like any other (one busy timeout per attempt, as
 * SQLite's own handler gives). SQLite's handler waits synchronously, which with
 * better-sqlite3 blocks the event loop; here the wait between tries lets the process's
 * other transactions (the app's, holding the lock) run to their end. The pauses grow
 * from 1 ms to {@link BUSY_POLL_MAX_MS}, jittered, as SQLite's own handler's do.
 */
export async function waitOutBusy<T>(
  deadline: number,
  isBusy: (error: unknown) => boolean,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let tries = 1; ; tries += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw error;
      const ceiling = Math.min(BUSY_POLL_MAX_MS, 2 ** (tries - 1));
      await sleep(Math.min(remaining, ceiling / 2 + (Math.random() * ceiling) / 2));
    }
  }
}
