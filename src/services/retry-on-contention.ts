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
