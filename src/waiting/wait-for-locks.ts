import { SlotLockException } from '../errors/slot-lock.exception';
import { WaitingLine, type Place } from './waiting-line';

/** How waiters poll for held locks to be released (SPEC 10): jittered, growing pauses. */
export interface WaitOptions {
  /** Pause ceiling after the first failed try, in milliseconds. Default `10`. */
  readonly baseDelayMs: number;
  /**
   * Largest pause between two tries, in milliseconds: a waiter notices a release within
   * this time where nothing wakes it (MySQL, SQLite, or a release PostgreSQL could not
   * notify). Default `100`.
   */
  readonly maxDelayMs: number;
}

/** Default wait settings (frozen). */
export const DEFAULT_WAIT: Readonly<WaitOptions> = Object.freeze({ baseDelayMs: 10, maxDelayMs: 100 });

/** Something that tells waiters a lock was released (PostgreSQL `LISTEN`). */
export interface ReleaseWakeups {
  /** Calls `onRelease` on every release until the returned function is called; resolves once listening. */
  subscribe(onRelease: () => void): Promise<() => void>;
  /** Stops listening now, whoever still waits (they go on polling). */
  close(): void;
}

/** One call's wait: until when, what cancels it, how it pauses, what wakes it. */
export interface WaitPlan {
  /** `Date.now()` after which a held lock is final. */
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  readonly delays: Readonly<WaitOptions>;
  readonly wakeups: ReleaseWakeups | undefined;
  /** The line of this process's waiters for the same slot family, if the call waits in one (acquireSlot). */
  readonly line?: WaitingLine | undefined;
}

/**
 * Runs `attempt` until it takes its locks, or until a held lock (or contention the
 * retries did not get past) outlasts `plan.deadline`: then its SlotLockException stands.
 * Between tries it pauses (jittered, growing to `maxDelayMs`), and wakes early on a
 * release where the engine says so. With a waiting line (`plan.line`), a caller that found
 * every slot held, or came while others wait, joins the line and tries again only when
 * its turn comes.
 *
 * An abort rejects with the signal's reason: at once during a pause; during a try, when
 * that try returns, after `undo` has given back whatever it took. So the caller holds
 * nothing of the call once it rejects. Without `undo`, what a try did stands (a
 * committed unit), and the call resolves with it.
 */
export async function waitForLocks<T>(
  attempt: () => Promise<T>,
  plan: WaitPlan,
  undo?: (taken: T) => Promise<unknown>,
): Promise<T> {
  const { signal } = plan;
  const line = plan.line ?? new WaitingLine();
  // A place in line once a try found every slot held, or at once behind those who did.
  let place: Place | undefined;
  let unsubscribe: (() => void) | undefined;
  let gaveBack = false;
  try {
    if (!line.isEmpty) {
      place = line.join();
      await place.turn(plan.delays.baseDelayMs, plan.deadline, signal);
    }
    for (let failures = 0; ;) {
      signal?.throwIfAborted();
      place?.trying();
      let taken: T;
      try {
        taken = await attempt();
      } catch (error) {
        if (!worthWaiting(error) || Date.now() >= plan.deadline) throw error;
        failures += 1;
        place ??= line.join();
        if (plan.wakeups !== undefined && unsubscribe === undefined) {
          unsubscribe = await plan.wakeups.subscribe(line.nudge.bind(line));
          // Listening from now on; a release before that is caught by trying again at once.
          if (place.isFirst) continue;
        }
        await place.turn(Math.min(delayMs(plan.delays, failures), plan.deadline - Date.now()), plan.deadline, signal);
        continue;
      }
      if (signal?.aborted && undo !== undefined) {
        await undo(taken);
        gaveBack = true;
        signal.throwIfAborted();
      }
      return taken;
    }
  } finally {
    unsubscribe?.();
    place?.leave();
    if (gaveBack) line.released(1); // what an aborted call gave back goes to the next in line
  }
}

/** Held locks and exhausted contention are worth waiting out; not a transaction the server rolled back. */
function worthWaiting(error: unknown): boolean {
  return error instanceof SlotLockException && !error.transactionRolledBack;
}

/** Equal jitter: between half the ceiling and the ceiling, so that a waiter never spins. */
function delayMs(delays: Readonly<WaitOptions>, failures: number): number {
  const ceiling = Math.min(delays.maxDelayMs, delays.baseDelayMs * 2 ** (failures - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}
