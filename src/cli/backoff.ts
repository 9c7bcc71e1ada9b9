import { SlotLockException, type SlotLockService } from '../index';

/**
 * How `--wait` retries a held lock: the pause before try n+1 is drawn between half and
 * all of min(maxDelayMs, firstDelayMs * 2^n). Growing, so a long wait does not hammer
 * the server; jittered, so waiters on several machines do not retry in lockstep;
 * capped, so a release is noticed within about a second.
 */
export const WAIT_BACKOFF = Object.freeze({ firstDelayMs: 100, factor: 2, maxDelayMs: 1000 });

/** The pause after the `attempt`-th failed try (0-based), in milliseconds. */
export function waitBackoffMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(WAIT_BACKOFF.maxDelayMs, WAIT_BACKOFF.firstDelayMs * WAIT_BACKOFF.factor ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/** Options of {@link acquireWaiting}. */
export interface AcquireWaitingOptions {
  /** Keep trying for this long; `0` or absent: one try. */
  readonly waitSeconds?: number;
  /** Stops waiting (rejects with the signal's reason) when aborted, e.g. on SIGINT. */
  readonly signal?: AbortSignal;
  /** Called once per failed try that will be retried. */
  readonly onRetry?: (error: SlotLockException, attempt: number, delayMs: number) => void;
}

/**
 * `acquireLocks`, retried while a lock is held until `waitSeconds` have passed; rejects
 * with the last {@link SlotLockException} when time is up. Other errors reject at once.
 */
export async function acquireWaiting(
  slotLocks: SlotLockService,
  owner: string,
  keys: readonly string[],
  options: AcquireWaitingOptions = {},
): Promise<void> {
  const deadline = Date.now() + (options.waitSeconds ?? 0) * 1000;
  for (let attempt = 0; ; attempt += 1) {
    options.signal?.throwIfAborted();
    try {
      await slotLocks.acquireLocks(owner, keys);
      return;
    } catch (error) {
      const remaining = deadline - Date.now();
      if (!(error instanceof SlotLockException) || remaining <= 0) throw error;
      const delayMs = Math.min(remaining, waitBackoffMs(attempt));
      options.onRetry?.(error, attempt, delayMs);
      await sleep(delayMs, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
