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
export function retryOnContention<T>(
  retry: Readonly<RetryOptions>,
  isContention: (error: unknown) => boolean,
  attempt: (attemptNumber: number) => Promise<T>,
  onRetry?: (error: unknown, attemptNumber: number) => void,
): Promise<T> {
  // The first attempt without an async frame of its own: it is nearly every call, and a
  // lock cycle is short enough that a promise layer shows (issue 12, item 1).
  return started(() => attempt(1)).catch((error: unknown) => retryAfter(retry, isContention, attempt, onRetry, error));
}

/**
 * {@link retryOnContention} for work with no lock map to report (releases, giving back,
 * sessions' statements): when retrying did not get past contention, the driver's own
 * last error is thrown, as it says what happened.
 */
export function retryOrDriverError<T>(
  retry: Readonly<RetryOptions>,
  isContention: (error: unknown) => boolean,
  attempt: (attemptNumber: number) => Promise<T>,
  onRetry?: (error: unknown, attemptNumber: number) => void,
): Promise<T> {
  return retryOnContention(retry, isContention, attempt, onRetry).catch((error: unknown) => {
    throw error instanceof ContentionExhausted ? error.error : error;
  });
}

async function retryAfter<T>(
  retry: Readonly<RetryOptions>,
  isContention: (error: unknown) => boolean,
  attempt: (attemptNumber: number) => Promise<T>,
  onRetry: ((error: unknown, attemptNumber: number) => void) | undefined,
  firstError: unknown,
): Promise<T> {
  if (!isContention(firstError)) throw firstError;
  if (retry.attempts <= 1) throw new ContentionExhausted(firstError, 1);
  onRetry?.(firstError, 1);
  await sleep(backoffMs(retry, 1));
  for (let attemptNumber = 2; ; attemptNumber += 1) {
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
export function waitOutBusy<T>(
  deadline: number,
  isBusy: (error: unknown) => boolean,
  attempt: () => Promise<T>,
): Promise<T> {
  return started(attempt).catch((error: unknown) => waitAfter(deadline, isBusy, attempt, error));
}

async function waitAfter<T>(
  deadline: number,
  isBusy: (error: unknown) => boolean,
  attempt: () => Promise<T>,
  firstError: unknown,
): Promise<T> {
  let error = firstError;
  for (let tries = 1; ; tries += 1) {
    if (!isBusy(error)) throw error;
    const remaining = deadline - Date.now();
    if (remaining <= 0) throw error;
    await sleep(Math.min(remaining, busyPauseMs(tries)));
    try {
      return await attempt();
    } catch (next) {
      error = next;
    }
  }
}

/** The pause after the `tries`-th busy try: from 1 ms, doubling up to {@link BUSY_POLL_MAX_MS}, jittered. */
function busyPauseMs(tries: number): number {
  const ceiling = Math.min(BUSY_POLL_MAX_MS, 2 ** (tries - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

/**
 * `next()` after the pause {@link waitOutBusy} makes after a first busy try: for a
 * statement that met "busy" outside it (run at once), so that the usual way's first try
 * is not the same statement again straight away.
 */
export function afterBusyPause<T>(next: () => Promise<T>): Promise<T> {
  return sleep(busyPauseMs(1)).then(next);
}

/** `run()`, with a synchronous throw turned into a rejection. */
function started<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run();
  } catch (error) {
    return Promise.reject(error);
  }
}
