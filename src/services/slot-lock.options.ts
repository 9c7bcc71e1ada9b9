import type { EntityManager } from 'typeorm';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';
import { SESSION_TABLE_NAME } from '../dialects/session-sql';
import { DEFAULT_WAIT, type WaitOptions } from '../waiting/wait-for-locks';

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
   * The session table (SPEC 9), named as `tableName` is; the session migration creates
   * `drydock_slotlock_session` in the DataSource's own database (or schema), whatever
   * `tableName` says, so that sessions of an app sharing Phorge's lock table live in the
   * app's database. Default `'drydock_slotlock_session'`.
   */
  readonly sessionTableName?: string;
  /**
   * Longest lock key accepted, in UTF-8 bytes. Longer keys are rejected with a
   * `RangeError` before any query. Default `65535`.
   */
  readonly maxKeyBytes?: number;
  /** Contention retries; any field may be overridden per call. Defaults: {@link DEFAULT_RETRY}. */
  readonly retry?: Partial<RetryOptions>;
  /** How calls with `waitMs` poll for held locks. Defaults: {@link DEFAULT_WAIT}. */
  readonly wait?: Partial<WaitOptions>;
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
  /**
   * How long to keep trying while a lock is held, in milliseconds (SPEC 10): the call
   * resolves as soon as the holders release, and rejects with the SlotLockException only
   * once `waitMs` has passed. `Infinity` waits until `signal` aborts. Not with `manager`:
   * waiting inside your transaction would keep what it holds from others. Default `0`.
   * `acquireSlot` callers of one process wait in line: see {@link SlotLockService.acquireSlot}.
   */
  readonly waitMs?: number;
  /**
   * Cancels the call: it rejects with the signal's reason (an `AbortError` by default) at
   * once while waiting, or when the statement in flight returns, and holds nothing of the
   * call afterwards. With `manager`, only checked before the call starts.
   */
  readonly signal?: AbortSignal;
}

/** Options of {@link SlotLockService.openSession}. */
export interface OpenSessionOptions {
  /**
   * How long the session lives without a heartbeat, in milliseconds (at least
   * {@link MIN_SESSION_TTL_MS}). It renews itself every third of it. Default `30000`.
   */
  readonly ttlMs?: number;
  /** The session's owner. Default: a new `PHID-SESS-…` of 20 random characters. */
  readonly ownerPHID?: string;
}

/** Default TTL of a session, in milliseconds. */
export const DEFAULT_SESSION_TTL_MS = 30_000;

/** Shortest TTL of a session, in milliseconds: a heartbeat every third of it must be able to reach the database. */
export const MIN_SESSION_TTL_MS = 300;

/** Longest TTL of a session, in milliseconds (what a Node timer can wait). */
export const MAX_SESSION_TTL_MS = 2_147_483_647;

/** Checks a session's TTL, naming the argument. */
export function checkSessionTtl(ttlMs: unknown, argumentName: string): number {
  if (
    !Number.isSafeInteger(ttlMs) ||
    (ttlMs as number) < MIN_SESSION_TTL_MS ||
    (ttlMs as number) > MAX_SESSION_TTL_MS
  ) {
    throw new RangeError(
      `${argumentName} must be an integer number of milliseconds from ${MIN_SESSION_TTL_MS} to ${MAX_SESSION_TTL_MS}, got ${String(ttlMs)}`,
    );
  }
  return ttlMs as number;
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
  sessionTableName: SESSION_TABLE_NAME,
  maxKeyBytes: 65535,
  retry: DEFAULT_RETRY,
  wait: DEFAULT_WAIT,
});

/** Options with every default filled in. */
export interface ResolvedSlotLockOptions {
  readonly tableName: string;
  readonly sessionTableName: string;
  readonly maxKeyBytes: number;
  readonly retry: Readonly<RetryOptions>;
  readonly wait: Readonly<WaitOptions>;
}

/** Fills in defaults and checks every field, naming the one that is wrong. */
export function resolveSlotLockOptions(options: SlotLockServiceOptions = {}): ResolvedSlotLockOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError('SlotLockService options must be an object');
  }
  const tableName = checkTableName(options.tableName ?? DEFAULT_SLOT_LOCK_OPTIONS.tableName, 'options.tableName');
  const sessionTableName = checkTableName(
    options.sessionTableName ?? DEFAULT_SLOT_LOCK_OPTIONS.sessionTableName,
    'options.sessionTableName',
  );
  const maxKeyBytes = options.maxKeyBytes ?? DEFAULT_SLOT_LOCK_OPTIONS.maxKeyBytes;
  if (!Number.isSafeInteger(maxKeyBytes) || maxKeyBytes < 1) {
    throw new RangeError(`options.maxKeyBytes must be a positive integer, got ${String(maxKeyBytes)}`);
  }
  return Object.freeze({
    tableName,
    sessionTableName,
    maxKeyBytes,
    retry: resolveRetry(DEFAULT_RETRY, options.retry, 'options.retry'),
    wait: resolveWait(options.wait),
  });
}

function checkTableName(name: unknown, argumentName: string): string {
  if (typeof name !== 'string' || !/^[\p{L}\p{N}_$-]{1,64}(\.[\p{L}\p{N}_$-]{1,64})?$/u.test(name)) {
    throw new TypeError(
      `${argumentName} must be a table name, optionally "database.table" or "schema.table", each part of 1 to 64 letters, digits, _, $ or -; got ${JSON.stringify(name)}`,
    );
  }
  return name;
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

function resolveWait(overrides: Partial<WaitOptions> | undefined): Readonly<WaitOptions> {
  if (overrides === undefined) return DEFAULT_WAIT;
  if (typeof overrides !== 'object' || overrides === null) throw new TypeError('options.wait must be an object');
  const wait = { ...DEFAULT_WAIT, ...stripUndefined(overrides) };
  for (const field of ['baseDelayMs', 'maxDelayMs'] as const) {
    if (typeof wait[field] !== 'number' || !Number.isFinite(wait[field]) || wait[field] < 1) {
      throw new RangeError(`options.wait.${field} must be a finite number of at least 1, got ${String(wait[field])}`);
    }
  }
  return Object.freeze(wait);
}

/**
 * The wait of one call (SPEC 10), checked before any query: `waitMs` and `signal` as the
 * caller gave them. Rejects with the signal's reason when it has aborted already.
 */
export function checkWait(
  options: SlotLockCallOptions,
  withManager: boolean,
): { waitMs: number; signal: AbortSignal | undefined } {
  const { waitMs = 0, signal } = options;
  if (typeof waitMs !== 'number' || Number.isNaN(waitMs) || waitMs < 0) {
    throw new RangeError(
      `options.waitMs must be a number of milliseconds of at least 0 (Infinity waits until options.signal aborts), got ${String(waitMs)}`,
    );
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      'options.signal must be an AbortSignal (new AbortController().signal, AbortSignal.timeout(ms))',
    );
  }
  if (withManager && waitMs > 0) {
    throw new TypeError(
      'options.waitMs cannot be used with options.manager: a wait inside your transaction would keep what it holds ' +
        'from the holders it waits for; wait before the transaction, or use commitWithLocks with waitMs',
    );
  }
  signal?.throwIfAborted();
  return { waitMs, signal };
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
