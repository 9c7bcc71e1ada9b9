import type { EntityManager } from 'typeorm';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';

/**
 * How contention (deadlocks, lock-wait timeouts, Galera certification failures) is
 * retried where the service owns the transaction: full-jitter exponential backoff.
 */
export interface RetryOptions {
  /** Attempts in all, the first included. Default `10`. */
  readonly attempts: number;
  /** Backoff ceiling before the second attempt, in milliseconds. Default `5`. */
  readonly baseDelayMs: number;
  /** Largest backoff ceiling, in milliseconds. Default `250`. */
  readonly maxDelayMs: number;
}

/** Options of {@link SlotLockService}; every field is optional. */
export interface SlotLockServiceOptions {
  /**
   * The lock table, optionally `database.table` (e.g. `phabricator_drydock.drydock_slotlock`
   * to share Phorge's table from a connection to another database) or, on PostgreSQL,
   * `schema.table`. An unqualified name on a PostgreSQL DataSource with a `schema`
   * option is looked up in that schema, where the migration creates it.
   * Default `'drydock_slotlock'`.
   */
  readonly tableName?: string;
  /**
   * Longest lock key accepted, in UTF-8 bytes. Longer keys are rejected with a
   * `RangeError` before any query. Default `65535`.
   */
  readonly maxKeyBytes?: number;
  /** Contention retries; any field may be overridden per call. Defaults: {@link DEFAULT_RETRY}. */
  readonly retry?: Partial<RetryOptions>;
}

/** Per-call options of the acquiring and releasing methods. */
export interface SlotLockCallOptions {
  /**
   * An `EntityManager` inside a transaction you started (`dataSource.transaction(manager => …)`):
   * the statements join it, so the locks commit or roll back with your own writes.
   * Default: the service runs its own transaction.
   */
  readonly manager?: EntityManager;
  /** Overrides the service's retry settings for this call. */
  readonly retry?: Partial<RetryOptions>;
}

/** Default retry settings (frozen). */
export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  attempts: 10,
  baseDelayMs: 5,
  maxDelayMs: 250,
});

/** Defaults of {@link SlotLockServiceOptions} (frozen). */
export const DEFAULT_SLOT_LOCK_OPTIONS = Object.freeze({
  tableName: PHORGE_TABLE_NAME,
  maxKeyBytes: 65535,
  retry: DEFAULT_RETRY,
});

/** Options with every default filled in. */
export interface ResolvedSlotLockOptions {
  readonly tableName: string;
  readonly maxKeyBytes: number;
  readonly retry: Readonly<RetryOptions>;
}

/** Fills in defaults and checks every field, naming the one that is wrong. */
export function resolveSlotLockOptions(options: SlotLockServiceOptions = {}): ResolvedSlotLockOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('SlotLockService options must be an object');
  }
  const tableName = options.tableName ?? DEFAULT_SLOT_LOCK_OPTIONS.tableName;
  if (typeof tableName !== 'string' || !/^[\p{L}\p{N}_$-]{1,64}(\.[\p{L}\p{N}_$-]{1,64})?$/u.test(tableName)) {
    throw new TypeError(
      `options.tableName must be a table name, optionally "database.table" or "schema.table", each part of 1 to 64 letters, digits, _, $ or -; got ${JSON.stringify(tableName)}`,
    );
  }
  const maxKeyBytes = options.maxKeyBytes ?? DEFAULT_SLOT_LOCK_OPTIONS.maxKeyBytes;
  if (!Number.isSafeInteger(maxKeyBytes) || maxKeyBytes < 1) {
    throw new RangeError(`options.maxKeyBytes must be a positive integer, got ${String(maxKeyBytes)}`);
  }
  return Object.freeze({
    tableName,
    maxKeyBytes,
    retry: resolveRetry(DEFAULT_RETRY, options.retry, 'options.retry'),
  });
}

/** Applies partial overrides to retry settings, checking each field. */
export function resolveRetry(
  base: Readonly<RetryOptions>,
  overrides: Partial<RetryOptions> | undefined,
  argumentName: string,
): Readonly<RetryOptions> {
  if (overrides === undefined) return base;
  if (typeof overrides !== 'object' || overrides === null) {
    throw new TypeError(`${argumentName} must be an object`);
  }
  const retry = { ...base, ...stripUndefined(overrides) };
  if (!Number.isSafeInteger(retry.attempts) || retry.attempts < 1) {
    throw new RangeError(`${argumentName}.attempts must be an integer of at least 1, got ${String(retry.attempts)}`);
  }
  for (const field of ['baseDelayMs', 'maxDelayMs'] as const) {
    if (typeof retry[field] !== 'number' || !Number.isFinite(retry[field]) || retry[field] < 0) {
      throw new RangeError(
        `${argumentName}.${field} must be a finite number of at least 0, got ${String(retry[field])}`,
      );
    }
  }
  return Object.freeze(retry);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
