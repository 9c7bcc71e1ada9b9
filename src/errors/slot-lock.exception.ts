/** Why an acquisition failed. */
export type SlotLockFailure =
  /** A requested lock is held (by another owner, or by the caller: locks are not re-entrant). */
  | 'held'
  /** Deadlocks, lock-wait timeouts or serialization failures that retrying did not get past (or could not, inside a caller's transaction). */
  | 'contention';

/** Data carried by a {@link SlotLockException}. */
export interface SlotLockExceptionDetails {
  /** `{ [lockKey]: ownerPHID }` for the requested locks found held. */
  readonly lockMap: Readonly<Record<string, string>>;
  readonly failure: SlotLockFailure;
  /** True when the server rolled back the caller's own transaction (SPEC 4.4). */
  readonly transactionRolledBack?: boolean;
  /** Attempts made before giving up (1 when nothing was retried). */
  readonly attempts?: number;
  /** The driver error that revealed the conflict. */
  readonly cause?: unknown;
}

/**
 * Some requested lock is held, so none was taken (SPEC 4.2). Mirrors Phorge's
 * `DrydockSlotLockException`: the message lists each held key with its owner.
 *
 * @example
 * ```ts
 * try {
 *   await slotLocks.acquireLocks(leasePHID, ['host(7)']);
 * } catch (error) {
 *   if (!(error instanceof SlotLockException)) throw error;
 *   console.log(error.getLockMap()); // { 'host(7)': 'PHID-DRYL-other' }
 * }
 * ```
 */
export class SlotLockException extends Error {
  override readonly name = 'SlotLockException';
  /** Whether a lock was found held, or contention could not be got past. */
  readonly failure: SlotLockFailure;
  /** True when the server rolled back the caller's transaction (only with `manager`). */
  readonly transactionRolledBack: boolean;
  /** Attempts made, retries included. */
  readonly attempts: number;
  readonly #lockMap: Readonly<Record<string, string>>;

  constructor(details: SlotLockExceptionDetails) {
    super(formatMessage(details), details.cause === undefined ? undefined : { cause: details.cause });
    this.failure = details.failure;
    this.transactionRolledBack = details.transactionRolledBack ?? false;
    this.attempts = details.attempts ?? 1;
    this.#lockMap = Object.freeze(Object.fromEntries(Object.entries(details.lockMap)));
  }

  /** `{ [lockKey]: ownerPHID }` of the held locks, read right after the failure; may be empty if the holder released in between. */
  getLockMap(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.#lockMap));
  }
}

function formatMessage(details: SlotLockExceptionDetails): string {
  const entries = Object.entries(details.lockMap);
  // Phorge's wording, so that logs read the same from either side.
  let message =
    entries.length === 0
      ? 'Unable to acquire slot locks.'
      : `Unable to acquire slot locks: ${entries.map(([key, owner]) => `"${key}" (owned by "${owner}")`).join(', ')}.`;
  if (details.failure === 'contention') {
    const attempts = details.attempts ?? 1;
    message += ` Gave up under lock contention (deadlock, lock-wait timeout or serialization failure) after ${attempts} attempt${attempts === 1 ? '' : 's'}.`;
  }
  if (details.transactionRolledBack) {
    message += ' The server rolled back your transaction: retry the whole unit of work.';
  }
  return message;
}
