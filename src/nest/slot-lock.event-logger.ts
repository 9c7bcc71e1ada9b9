import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import {
  SLOT_LOCK_CHANNELS,
  type SlotLockAcquiredEvent,
  type SlotLockConflictEvent,
  type SlotLockReleasedEvent,
  type SlotLockRetryEvent,
} from '../diagnostics/slot-lock-channels';

/** The context the events are logged under. */
export const SLOT_LOCK_LOGGER_CONTEXT = 'SlotLock';

/** Keys listed in one log line at most; a batch of thousands would drown the log. */
const KEYS_PER_LINE = 10;

const logger = new Logger(SLOT_LOCK_LOGGER_CONTEXT);

/** One listener per channel, each turning the event into one log line. */
const LISTENERS: ReadonlyArray<readonly [string, (message: unknown) => void]> = [
  [
    SLOT_LOCK_CHANNELS.acquired,
    (message) => {
      const event = message as SlotLockAcquiredEvent;
      const where = event.inCallerTransaction ? " in the caller's transaction (not yet committed)" : '';
      logger.log(`${event.ownerPHID} acquired ${listKeys(event.lockKeys)}${where}`);
    },
  ],
  [
    SLOT_LOCK_CHANNELS.conflict,
    (message) => {
      const event = message as SlotLockConflictEvent;
      const held = Object.entries(event.lockMap).map(([key, owner]) => `"${key}" (owned by "${owner}")`);
      const why = event.failure === 'contention' ? 'contention outlasted the retries' : 'held';
      logger.warn(
        `${event.ownerPHID} could not acquire ${listKeys(event.lockKeys)}: ${why}${held.length > 0 ? `: ${held.join(', ')}` : ''}`,
      );
    },
  ],
  [
    SLOT_LOCK_CHANNELS.released,
    (message) => {
      const event = message as SlotLockReleasedEvent;
      logger.log(`${event.ownerPHID} released ${event.count} lock${event.count === 1 ? '' : 's'}`);
    },
  ],
  [
    SLOT_LOCK_CHANNELS.retry,
    (message) => {
      const event = message as SlotLockRetryEvent;
      logger.debug(
        `${event.operation} for ${event.ownerPHID}: contention (${String(event.code)}) on attempt ${event.attempt}, retrying`,
      );
    },
  ],
];

/** Modules currently logging: the channels are the process's, so they are subscribed once, whatever the count. */
let users = 0;

/**
 * Writes the events every {@link SlotLockService} of the process publishes on
 * `node:diagnostics_channel` ({@link SLOT_LOCK_CHANNELS}) to Nest's `Logger`, context
 * `SlotLock`: acquisitions and releases at `log`, conflicts at `warn`, contention retries
 * at `debug`. `SlotLockModule` provides it when given `logEvents: true`; it subscribes
 * when the module starts and unsubscribes when the last such module is destroyed
 * (`app.close()`).
 *
 * The channels carry no data source, so with several data sources the lines of every
 * service appear once, whichever module asked.
 */
@Injectable()
export class SlotLockEventLogger implements OnModuleInit, OnModuleDestroy {
  #subscribed = false;

  /** Subscribes to the channels (once per process). */
  onModuleInit(): void {
    if (this.#subscribed) return;
    this.#subscribed = true;
    users += 1;
    if (users === 1) for (const [name, listener] of LISTENERS) subscribe(name, listener);
  }

  /** Unsubscribes once no module logs any more. */
  onModuleDestroy(): void {
    if (!this.#subscribed) return;
    this.#subscribed = false;
    users -= 1;
    if (users === 0) for (const [name, listener] of LISTENERS) unsubscribe(name, listener);
  }
}

/** `3 locks: a, b, c`, at most {@link KEYS_PER_LINE} keys. */
function listKeys(keys: readonly string[]): string {
  const shown = keys.slice(0, KEYS_PER_LINE).join(', ');
  const more = keys.length > KEYS_PER_LINE ? ` and ${keys.length - KEYS_PER_LINE} more` : '';
  return `${keys.length} lock${keys.length === 1 ? '' : 's'}: ${shown}${more}`;
}
