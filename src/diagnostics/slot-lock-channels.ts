import { channel } from 'node:diagnostics_channel';
import type { SlotLockFailure } from '../errors/slot-lock.exception';

/**
 * What the service reports, on `node:diagnostics_channel`, without forcing a logger
 * on anyone: subscribe to the channels you care about; unsubscribed channels cost
 * nothing (messages are only built when someone listens).
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel';
 * import { SLOT_LOCK_CHANNELS, type SlotLockConflictEvent } from 'drydock-slotlock';
 *
 * subscribe(SLOT_LOCK_CHANNELS.conflict, (message) => {
 *   const event = message as SlotLockConflictEvent;
 *   logger.warn({ owner: event.ownerPHID, held: event.lockMap }, 'slot lock conflict');
 * });
 * ```
 */
export const SLOT_LOCK_CHANNELS = Object.freeze({
  /** {@link SlotLockAcquiredEvent}: locks were taken (with `manager`: inserted in your transaction, not yet committed). */
  acquired: 'drydock-slotlock:acquired',
  /** {@link SlotLockConflictEvent}: an acquisition failed with a SlotLockException. */
  conflict: 'drydock-slotlock:conflict',
  /** {@link SlotLockReleasedEvent}: an owner's locks were released. */
  released: 'drydock-slotlock:released',
  /** {@link SlotLockRetryEvent}: contention (deadlock, lock-wait timeout) is being retried. */
  retry: 'drydock-slotlock:retry',
});

/** Published on {@link SLOT_LOCK_CHANNELS}.acquired. */
export interface SlotLockAcquiredEvent {
  readonly ownerPHID: string;
  readonly lockKeys: readonly string[];
  /** True when the locks joined a caller's transaction (`manager`). */
  readonly inCallerTransaction: boolean;
}

/** Published on {@link SLOT_LOCK_CHANNELS}.conflict. */
export interface SlotLockConflictEvent {
  readonly ownerPHID: string;
  readonly lockKeys: readonly string[];
  readonly failure: SlotLockFailure;
  /** `{ [lockKey]: ownerPHID }` of the held locks. */
  readonly lockMap: Readonly<Record<string, string>>;
}

/** Published on {@link SLOT_LOCK_CHANNELS}.released. */
export interface SlotLockReleasedEvent {
  readonly ownerPHID: string;
  readonly count: number;
}

/** Published on {@link SLOT_LOCK_CHANNELS}.retry. */
export interface SlotLockRetryEvent {
  readonly ownerPHID: string;
  readonly operation: 'acquireLocks' | 'acquireSlot' | 'releaseLocks' | 'commitWithLocks';
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  /** The driver's error number or code, e.g. 1213. */
  readonly code: number | string | undefined;
}

const acquired = channel(SLOT_LOCK_CHANNELS.acquired);
const conflict = channel(SLOT_LOCK_CHANNELS.conflict);
const released = channel(SLOT_LOCK_CHANNELS.released);
const retry = channel(SLOT_LOCK_CHANNELS.retry);

/** Publishing helpers: each builds its message only when someone subscribes. */
export const publish = Object.freeze({
  acquired(event: () => SlotLockAcquiredEvent): void {
    if (acquired.hasSubscribers) acquired.publish(event());
  },
  conflict(event: () => SlotLockConflictEvent): void {
    if (conflict.hasSubscribers) conflict.publish(event());
  },
  released(event: () => SlotLockReleasedEvent): void {
    if (released.hasSubscribers) released.publish(event());
  },
  retry(event: () => SlotLockRetryEvent): void {
    if (retry.hasSubscribers) retry.publish(event());
  },
});
