import { SlotLockException, type SlotLockService } from '../index';

/** Options of {@link acquireWaiting}. */
export interface AcquireWaitingOptions {
  /** How long to wait for held locks, in seconds; `0`: one try. */
  readonly waitSeconds: number;
  /** Stops the wait (the call rejects with its reason, holding nothing), e.g. on SIGINT. */
  readonly signal: AbortSignal;
  /** Called once when the first try finds a lock held and the call is about to wait. */
  readonly onWait?: (error: SlotLockException) => void;
}

/**
 * `acquireLocks` for `acquire --wait` and `run --wait`: one try, and if a lock is held,
 * the service's own wait (`waitMs`, SPEC 10) for the rest of `waitSeconds`. The first try
 * is apart only so that the command can say who holds what before it waits; the waiting
 * (polling, or PostgreSQL's wake-up on release) is the service's. Rejects with the
 * {@link SlotLockException} of the last try when time is up, or with the signal's reason
 * once it aborts.
 */
export async function acquireWaiting(
  slotLocks: SlotLockService,
  owner: string,
  keys: readonly string[],
  options: AcquireWaitingOptions,
): Promise<void> {
  const deadline = Date.now() + options.waitSeconds * 1000;
  try {
    await slotLocks.acquireLocks(owner, keys, { signal: options.signal });
    return;
  } catch (error) {
    if (!(error instanceof SlotLockException) || options.waitSeconds === 0) throw error;
    options.onWait?.(error);
  }
  const waitMs = Math.max(0, deadline - Date.now());
  await slotLocks.acquireLocks(owner, keys, { waitMs, signal: options.signal });
}
