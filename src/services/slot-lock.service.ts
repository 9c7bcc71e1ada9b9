import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { dialectFor } from '../dialects';
import type { SqlStatement } from '../dialects/dialect';
import type { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';
import { publish, type SlotLockRetryEvent } from '../diagnostics/slot-lock-channels';
import { driverCause } from '../errors/classify-error';
import { driverErrorOf } from '../errors/driver-error-of';
import { SlotLockException } from '../errors/slot-lock.exception';
import { checkLimit, checkLockKey, checkOwner, prepareLocks, type RequestedLock, type TextRules } from './check-input';
import { LockTable } from './lock-table';
import { afterBusyPause, ContentionExhausted, retryOnContention, retryOrDriverError } from './retry-on-contention';
import {
  checkSessionTtl,
  checkWait,
  DEFAULT_SESSION_TTL_MS,
  resolveRetry,
  resolveSlotLockOptions,
  type OpenSessionOptions,
  type ResolvedSlotLockOptions,
  type RetryOptions,
  type SlotLockCallOptions,
  type SlotLockServiceOptions,
} from './slot-lock.options';
import { newSessionOwner, Sessions, type ReapedSessions } from '../sessions/sessions';
import { SessionTable } from '../sessions/session-table';
import type { SlotLockSession } from '../sessions/slot-lock-session';
import { waitForLocks, type ReleaseWakeups, type WaitPlan } from '../waiting/wait-for-locks';
import { waitingLinesOf, type WaitingLines } from '../waiting/waiting-line';
import {
  acquireInCallerTransaction,
  callerRunnerOf,
  callerSlotTries,
  guarded,
  inCallerTransaction,
  releaseInCallerTransaction,
  transactionGone,
} from './units/caller-transaction-unit';
import { SlotFamily, takeSlot, type AcquiredSlot } from './slots/take-slot';
import { ServiceConnection } from './units/service-connection';
import {
  acquireInServiceTransaction,
  insertOrReport,
  acquireNow,
  runWork,
  serviceSlotTries,
} from './units/service-transaction-unit';

/** Rounds of reaping expired holders and trying again within one try of a call. */
const REAP_ROUNDS = 3;

/** Options of {@link SlotLockService.commitWithLocks}. */
export interface CommitWithLocksOptions {
  /**
   * Runs after the rollback when the unit fails with a SlotLockException (a lock is held,
   * or contention outlasted the retries), with that exception; what it writes is not
   * rolled back (Drydock keeps a failure log this way).
   */
  readonly onConflict?: (exception: SlotLockException) => unknown;
  /** Overrides the service's retry settings for this call. */
  readonly retry?: Partial<RetryOptions>;
  /**
   * How long to keep trying while a lock is held, in milliseconds (SPEC 10); `work` runs
   * only once the locks are taken. Default `0`.
   */
  readonly waitMs?: number;
  /**
   * Cancels the call: while waiting it rejects at once; an abort before the unit's COMMIT
   * rolls the unit back. Once committed, the unit's result stands.
   */
  readonly signal?: AbortSignal;
}

/** Options of {@link SlotLockService.withLocks}. */
export interface WithLocksOptions {
  /**
   * Holds the locks under a session of this TTL, in milliseconds (SPEC 9): should the
   * process die, they are free within the TTL; should the session be lost, `fn`'s
   * `signal` aborts. Default: no session (the locks last until released).
   */
  readonly ttlMs?: number;
  /** How long to wait for held locks, in milliseconds (SPEC 10). Default `0`. */
  readonly waitMs?: number;
  /** Cancels the wait, and is passed on to `fn` (combined with the session's). */
  readonly signal?: AbortSignal;
  /** Overrides the service's retry settings for this call. */
  readonly retry?: Partial<RetryOptions>;
}

/** What {@link SlotLockService.withLocks} gives `fn`. */
export interface WithLocksContext {
  /** Aborts when `fn` must stop: the session was lost, or the caller's signal aborted. */
  readonly signal: AbortSignal;
}

/**
 * Drydock's slot locks on a TypeORM `DataSource` (SPEC 4).
 *
 * An owner takes a set of named locks in one multi-row INSERT into a table whose
 * unique index refuses a second holder: every lock or none. Locks last until their
 * owner releases them, all at once.
 *
 * @example
 * ```ts
 * const slotLocks = new SlotLockService(dataSource);
 * await dataSource.transaction(async (manager) => {
 *   await manager.update(Lease, lease.id, { status: 'active' });
 *   await slotLocks.acquireLocks(lease.phid, [`host(${host.id})`], { manager });
 * }); // the lease and its lock commit together, or neither does
 * await slotLocks.releaseLocks(lease.phid);
 * ```
 */
export class SlotLockService {
  readonly #options: ResolvedSlotLockOptions;
  /** What owners and keys may hold on this engine, with these options. */
  readonly #rules: TextRules;
  readonly #table: LockTable;
  readonly #connection: ServiceConnection;
  readonly #sessions: Sessions;
  /** What wakes waiters on a release, where the engine can (PostgreSQL). */
  readonly #wakeups: ReleaseWakeups | undefined;
  /** This process's callers waiting for slots, per family, shared with every service on the same table. */
  readonly #waitingLines: WaitingLines;

  /**
   * @param dataSource - a TypeORM data source of type `mysql`, `mariadb`, `postgres` or `better-sqlite3`
   *   (initialized before the first call).
   * @param options - see {@link SlotLockServiceOptions}; every field has a default.
   */
  constructor(dataSource: DataSource, options: SlotLockServiceOptions = {}) {
    if (typeof dataSource !== 'object' || dataSource === null || typeof dataSource.createQueryRunner !== 'function') {
      throw new TypeError('dataSource must be a TypeORM DataSource');
    }
    const dialect = dialectFor(dataSource);
    this.#options = resolveSlotLockOptions(options);
    this.#rules = Object.freeze({ maxKeyBytes: this.#options.maxKeyBytes, nulAllowed: dialect.storesNul });
    this.#table = new LockTable(dialect, dialect.tableOf(dataSource, this.#options.tableName));
    this.#connection = new ServiceConnection(dataSource, dialect);
    this.#waitingLines = waitingLinesOf(dataSource, this.#table.name);
    this.#sessions = new Sessions(
      new SessionTable(this.#table, dialect.tableOf(dataSource, this.#options.sessionTableName)),
      this.#connection,
      this.#options.retry,
      (owner, count) => {
        if (count > 0) this.#waitingLines.releasedBy(owner, true);
      },
    );
    this.#wakeups = dialect.releaseWakeups?.(dataSource);
  }

  /**
   * Closes the sessions this service opened (releasing their locks) and the connections
   * the service opened of its own (on SQLite, its own connection to the database file; on
   * PostgreSQL, the DataSource's listening connection, which otherwise stays open 5 s after
   * its last waiter);
   * the next call opens a new one. Call it when the app shuts down, before
   * `dataSource.destroy()`.
   *
   * @example
   * ```ts
   * await slotLocks.close();
   * await dataSource.destroy();
   * ```
   */
  async close(): Promise<void> {
    this.#wakeups?.close();
    await this.#sessions.closeAll();
    await this.#connection.close();
  }

  /**
   * Opens a session (SPEC 9): an owner whose locks are freed when it stops renewing them.
   * Its row goes into the session table (`slotLockSessionMigrations`); while the process
   * lives it renews itself every third of `ttlMs`. Take locks with its `ownerPHID`;
   * `close()` releases them. If the process dies, any acquisition that meets its locks
   * after `ttlMs` (and a margin of at most a third of it) frees them; if the session is
   * lost while the process lives, its `signal` aborts and the service refuses it every
   * further lock with a {@link SlotLockSessionLostError}.
   *
   * @example
   * ```ts
   * const session = await slotLocks.openSession({ ttlMs: 10_000 });
   * try {
   *   await slotLocks.acquireLocks(session.ownerPHID, ['host(7)'], { waitMs: 5_000 });
   *   await build(session.signal);
   * } finally {
   *   await session.close();
   * }
   * ```
   */
  openSession(options: OpenSessionOptions = {}): Promise<SlotLockSession> {
    let owner: string;
    let ttlMs: number;
    try {
      if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
      ttlMs = checkSessionTtl(options.ttlMs ?? DEFAULT_SESSION_TTL_MS, 'options.ttlMs');
      owner =
        options.ownerPHID === undefined
          ? newSessionOwner()
          : checkOwner(options.ownerPHID, this.#rules, 'options.ownerPHID');
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#sessions.open(owner, ttlMs);
  }

  /**
   * Deletes every expired session and the locks it held (SPEC 9); resolves to how many of
   * each. Not needed for correctness (an acquisition that meets a dead session's locks
   * reaps it), but keeps `loadHeldLocks` and `slotlock locks` free of the dead.
   *
   * @example
   * ```ts
   * const { sessions, locks } = await slotLocks.reapExpiredSessions();
   * ```
   */
  reapExpiredSessions(): Promise<ReapedSessions> {
    return this.#sessions.reapAll();
  }

  /** The settings in force, defaults filled in. */
  get options(): ResolvedSlotLockOptions {
    return this.#options;
  }

  /**
   * Takes every lock in `lockKeys` for `ownerPHID`, or none (SPEC 4.1).
   *
   * Rejects with {@link SlotLockException} when any lock is held, by another owner or
   * by this one (locks are not re-entrant). Deadlocks and lock-wait timeouts are retried
   * where the service owns the transaction; with `manager` the statements join your
   * transaction instead.
   *
   * @example
   * ```ts
   * try {
   *   await slotLocks.acquireLocks('PHID-DRYL-aaaa', ['host(7)', 'licence.slot(0)']);
   * } catch (error) {
   *   if (error instanceof SlotLockException) console.log(error.getLockMap());
   *   else throw error;
   * }
   * ```
   */
  acquireLocks(ownerPHID: string, lockKeys: Iterable<string>, options: SlotLockCallOptions = {}): Promise<void> {
    // Promise chains rather than async frames on this path: a lock cycle is short
    // enough that each promise layer shows against the raw driver (issue 12, item 1).
    let owner: string;
    let locks: RequestedLock[];
    let retry: Readonly<RetryOptions>;
    let callerRunner: QueryRunner | undefined;
    let wait: WaitPlan | undefined;
    let session: SlotLockSession | undefined;
    try {
      owner = checkOwner(ownerPHID, this.#rules);
      locks = prepareLocks(lockKeys, this.#rules);
      retry = this.#retryFor(options);
      callerRunner = this.#callerRunnerOf(options);
      wait = this.#waitPlanFor(options, callerRunner !== undefined);
      session = this.#sessions.of(owner);
    } catch (error) {
      return Promise.reject(error);
    }
    if (locks.length === 0) return Promise.resolve();
    const once = (): Promise<void> => this.#acquireOnce(owner, locks, retry, callerRunner, session);
    const reaping = (): Promise<void> => this.#reapingHolders(once, callerRunner);
    let acquiring: Promise<void> | undefined;
    if (wait !== undefined) acquiring = waitForLocks(reaping, wait, () => this.#giveBack(owner, locks, retry));
    else if (callerRunner === undefined && session === undefined) acquiring = this.#acquireNow(owner, locks, once);
    acquiring ??= reaping();
    return acquiring.then(
      () =>
        publish.acquired(() => ({
          ownerPHID: owner,
          lockKeys: locks.map((lock) => lock.lockKey),
          inCallerTransaction: callerRunner !== undefined,
        })),
      (error: unknown) => {
        throw reportConflict(owner, lockKeysOf(locks), error);
      },
    );
  }

  /**
   * Releases every lock `ownerPHID` holds and resolves to how many there were (SPEC 4.5).
   * Releasing nothing is fine. Contention is retried where the service owns the
   * transaction, since a release that fails leaks locks.
   *
   * @example
   * ```ts
   * const released = await slotLocks.releaseLocks('PHID-DRYL-aaaa'); // 2
   * ```
   */
  releaseLocks(ownerPHID: string, options: SlotLockCallOptions = {}): Promise<number> {
    let owner: string;
    let retry: Readonly<RetryOptions>;
    let callerRunner: QueryRunner | undefined;
    try {
      owner = checkOwner(ownerPHID, this.#rules);
      retry = this.#retryFor(options);
      callerRunner = this.#callerRunnerOf(options);
    } catch (error) {
      return Promise.reject(error);
    }
    let releasing: Promise<number>;
    if (callerRunner !== undefined) {
      releasing = releaseInCallerTransaction(this.#table, callerRunner, owner);
    } else {
      const statement = this.#table.deleteByOwner(owner);
      const usual = (): Promise<number> =>
        retryOrDriverError(
          retry,
          this.#isContention,
          () => this.#connection.exclusive((dataSource) => this.#connection.autocommit(dataSource, statement)),
          reportRetry(owner, 'releaseLocks'),
        );
      releasing = this.#releaseNow(statement, usual) ?? usual();
    }
    return releasing.then((count) => {
      if (count > 0) this.#waitingLines.releasedBy(owner, callerRunner === undefined);
      publish.released(() => ({ ownerPHID: owner, count }));
      return count;
    });
  }

  /** The locks `ownerPHID` holds, as entities, oldest first (SPEC 4.6). */
  async loadLocks(ownerPHID: string): Promise<DrydockSlotLock[]> {
    const owner = checkOwner(ownerPHID, this.#rules);
    return this.#connection.exclusive((dataSource) => this.#table.loadByOwner(owner, dataSource));
  }

  /**
   * The held locks whose index matches any of `lockKeys` (SPEC 4.6). A lock found here
   * may carry another key than the one asked for, when two keys share a digest.
   */
  async loadHeldLocks(lockKeys: Iterable<string>): Promise<DrydockSlotLock[]> {
    const locks = prepareLocks(lockKeys, this.#rules);
    return this.#connection.exclusive((dataSource) => this.#table.loadHeld(locks, dataSource));
  }

  /** True when `lockKey` is not held by anyone. */
  async isLockFree(lockKey: string): Promise<boolean> {
    checkLockKey(lockKey, this.#rules, 'lockKey');
    return this.areLocksFree([lockKey]);
  }

  /** True when none of `lockKeys` is held by anyone. */
  async areLocksFree(lockKeys: Iterable<string>): Promise<boolean> {
    return (await this.loadHeldLocks(lockKeys)).length === 0;
  }

  /**
   * Takes one free slot of a limited family: `${name}.slot(0)` … `${name}.slot(limit-1)`
   * (SPEC 4.7). Slots are tried in random order so that callers spread out: each try
   * is one statement offering the server up to 32 random candidates, of which it takes
   * the first free one (MySQL reads the batch, then inserts one row). After three
   * batches found nothing free, the server is asked for the first free slot after a
   * random start (a scan of the lock table on the server, never read into the client).
   * While some of the family is free the cost does not grow with `limit`, which may be
   * up to `MAX_SLOT_LIMIT` (2^53 - 1).
   *
   * Rejects with {@link SlotLockException}: `failure: 'held'` only when every slot was
   * seen held, its lock map a sample (the holders of the last batch tried, at most 32
   * entries); `'contention'` after 8 free slots were taken by others first.
   *
   * With `waitMs`, callers of this process wait in line for the family (per DataSource
   * and lock table): only the first in line tries again, a slot released here
   * (`releaseLocks` or a session's close, for an owner that took it here) goes to it at
   * once, and a caller who comes while others wait goes to the back. Releases elsewhere
   * are found by the first in line's pauses (or `NOTIFY` on PostgreSQL).
   *
   * @example
   * ```ts
   * const { slot, lockKey } = await slotLocks.acquireSlot(leasePHID, 'licence(matlab)', 3);
   * // lockKey === `licence(matlab).slot(${slot})`
   * ```
   */
  async acquireSlot(
    ownerPHID: string,
    name: string,
    limit: number,
    options: SlotLockCallOptions = {},
  ): Promise<AcquiredSlot> {
    const owner = checkOwner(ownerPHID, this.#rules);
    checkLockKey(name, this.#rules, 'name');
    checkLimit(limit);
    const family = new SlotFamily(name, limit);
    // The longest key of the family: every other is shorter.
    checkLockKey(family.keyOf(limit - 1), this.#rules, 'name (with its ".slot(N)" suffix)');
    const retry = this.#retryFor(options);
    const callerRunner = callerRunnerOf(options.manager, this.#connection.dataSources());
    const wait = this.#waitPlanFor(options, callerRunner !== undefined);
    const session = this.#sessions.of(owner);
    const once = (): Promise<AcquiredSlot> => this.#slotOnce(owner, family, retry, callerRunner, session);
    const reaping = (): Promise<AcquiredSlot> => this.#reapingHolders(once, callerRunner);
    let taken: AcquiredSlot;
    try {
      taken = await (wait === undefined ? reaping() : this.#waitForSlot(owner, family, reaping, wait, retry));
    } catch (error) {
      // The keys of a slot rejection: those its lock map names (the last batch tried).
      throw reportConflict(
        owner,
        () => (error instanceof SlotLockException ? Object.keys(error.getLockMap()) : []),
        error,
      );
    }
    this.#waitingLines.took(owner, family.id);
    publish.acquired(() => ({
      ownerPHID: owner,
      lockKeys: [taken.lockKey],
      inCallerTransaction: callerRunner !== undefined,
    }));
    return taken;
  }

  /**
   * Drydock's allocation pattern in one call (SPEC 4.8): opens a transaction, takes the
   * locks, runs `work(manager)` with your own writes, and commits; locks and work commit
   * together or not at all. Contention anywhere in the unit retries the whole unit, so
   * `work` may run more than once (each time in a fresh transaction). When a lock is
   * held it rolls back, runs `onConflict`, and rejects with {@link SlotLockException}.
   *
   * @example
   * ```ts
   * const resource = await slotLocks.commitWithLocks(
   *   leasePHID,
   *   [`binding(${binding.phid})`],
   *   (manager) => manager.save(Resource, { bindingPHID: binding.phid, status: 'active' }),
   *   { onConflict: (error) => failureLog.save({ leasePHID, message: error.message }) },
   * );
   * ```
   */
  async commitWithLocks<T>(
    ownerPHID: string,
    lockKeys: Iterable<string>,
    work: (manager: EntityManager) => T | Promise<T>,
    options: CommitWithLocksOptions = {},
  ): Promise<T> {
    const owner = checkOwner(ownerPHID, this.#rules);
    const locks = prepareLocks(lockKeys, this.#rules);
    if (typeof work !== 'function') throw new TypeError('work must be a function (manager) => result');
    if (options.onConflict !== undefined && typeof options.onConflict !== 'function') {
      throw new TypeError('options.onConflict must be a function (exception) => void');
    }
    const retry = this.#retryFor(options);
    const wait = this.#waitPlanFor(options, false);
    const session = this.#sessions.of(owner);
    const once = (): Promise<T> => this.#unit(owner, locks, retry, 'commitWithLocks', session, work, wait?.signal);
    const reaping = (): Promise<T> => this.#reapingHolders(once);

    let result: T;
    try {
      // A committed unit stands, even if the signal aborted as it committed: nothing to give back.
      result = await (wait === undefined ? reaping() : waitForLocks(reaping, wait));
    } catch (error) {
      if (error instanceof SlotLockException) {
        reportConflict(owner, lockKeysOf(locks), error);
        if (options.onConflict !== undefined) await options.onConflict(error);
      }
      throw error;
    }
    publish.acquired(() => ({
      ownerPHID: owner,
      lockKeys: locks.map((lock) => lock.lockKey),
      inCallerTransaction: false,
    }));
    return result;
  }

  /**
   * Takes the locks, runs `fn`, and releases every lock of `ownerPHID` afterwards,
   * whatever `fn` did (SPEC 4.9). For short critical sections and the command line.
   * With `ttlMs` the locks are held under a session of `ownerPHID` (SPEC 9): `fn`'s
   * `signal` aborts if the session is lost, and the call then rejects with the
   * {@link SlotLockSessionLostError} whatever `fn` returned.
   *
   * @example
   * ```ts
   * await slotLocks.withLocks(
   *   `deploy(${process.pid})`,
   *   ['deploy(production)'],
   *   ({ signal }) => deploy({ signal }),
   *   { ttlMs: 30_000, waitMs: 60_000 },
   * );
   * ```
   */
  async withLocks<T>(
    ownerPHID: string,
    lockKeys: Iterable<string>,
    fn: (context: WithLocksContext) => T | Promise<T>,
    options: WithLocksOptions = {},
  ): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError('fn must be a function ({ signal }) => result');
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    // Everything checked before a session row is written.
    const owner = checkOwner(ownerPHID, this.#rules);
    const keys = prepareLocks(lockKeys, this.#rules).map((lock) => lock.lockKey);
    const ttlMs = options.ttlMs === undefined ? undefined : checkSessionTtl(options.ttlMs, 'options.ttlMs');
    checkWait(options, false);
    this.#retryFor(options);

    const session = ttlMs === undefined ? undefined : await this.#sessions.open(owner, ttlMs, false);
    const release = (): Promise<number> => (session !== undefined ? session.close() : this.releaseLocks(owner));
    try {
      await this.acquireLocks(owner, keys, { waitMs: options.waitMs, signal: options.signal, retry: options.retry });
    } catch (error) {
      // Nothing was taken: the owner's earlier locks, if any, stay as they were.
      await session?.discard().catch(() => undefined);
      throw error;
    }
    const signals = [session?.signal, options.signal].filter((signal) => signal !== undefined);
    const signal = signals.length === 0 ? new AbortController().signal : AbortSignal.any(signals);
    let result: T;
    try {
      result = await fn({ signal });
    } catch (error) {
      // fn's own error is the one to see; a release failing as well is added, not swapped in.
      await release().catch((releaseError: unknown) => {
        throw new AggregateError([error, releaseError], 'fn failed, and releasing its locks failed too');
      });
      throw error;
    }
    await release();
    // The locks were not held all along: fn's result must not read as done under them.
    const lost = session?.lostReason;
    if (lost !== undefined) throw lost;
    return result;
  }

  // --- internals -------------------------------------------------------------------

  /**
   * acquireSlot's wait: in the line of this process's waiters for the family when it
   * waits at all, so that a slot released here goes to the first of them; its
   * `attempts` count the statements of every try.
   */
  async #waitForSlot(
    owner: string,
    family: SlotFamily,
    reaping: () => Promise<AcquiredSlot>,
    wait: WaitPlan,
    retry: Readonly<RetryOptions>,
  ): Promise<AcquiredSlot> {
    const line = wait.deadline > Date.now() ? this.#waitingLines.use(family.id) : undefined;
    let earlierAttempts = 0;
    const counted = async (): Promise<AcquiredSlot> => {
      try {
        const slot = await reaping();
        return earlierAttempts === 0 ? slot : { ...slot, attempts: slot.attempts + earlierAttempts };
      } catch (error) {
        if (error instanceof SlotLockException) earlierAttempts += error.attempts;
        throw error;
      }
    };
    try {
      return await waitForLocks(counted, { ...wait, line }, (slot) =>
        this.#giveBack(owner, [family.lockOf(slot.slot)], retry),
      );
    } finally {
      if (line !== undefined) this.#waitingLines.done(family.id);
    }
  }

  /** The wait of a call with `waitMs` or `signal`; undefined for a call that neither waits nor can be cancelled. */
  #waitPlanFor(options: SlotLockCallOptions, withManager: boolean): WaitPlan | undefined {
    const { waitMs, signal } = checkWait(options, withManager);
    // With a manager the signal was checked above; the statements are the caller's transaction's.
    if ((waitMs === 0 && signal === undefined) || withManager) return undefined;
    return {
      deadline: Date.now() + waitMs,
      signal,
      delays: this.#options.wait,
      wakeups: waitMs > 0 ? this.#wakeups : undefined,
    };
  }

  /**
   * The usual acquisition (no manager, session or wait) without the promise layers of a
   * unit, where the connection can run its one INSERT synchronously (see `acquireNow`):
   * undefined when it cannot (nothing was sent). A failure goes on as the usual path's
   * first attempt would have: "busy" (another writer has the file) is tried again the
   * usual way, with its waits and retries, after the pause that way makes after a busy
   * try; a conflict becomes a SlotLockException, and an expired session's holders are
   * reaped and the locks tried again.
   */
  #acquireNow(owner: string, locks: readonly RequestedLock[], once: () => Promise<void>): Promise<void> | undefined {
    try {
      return acquireNow(this.#table, this.#connection, owner, locks) ? DONE : undefined;
    } catch (error) {
      if (this.#table.isContention(error)) return afterBusyPause(() => this.#reapingHolders(once));
      return this.#translateAcquireError(error, locks, 1).then((translated) =>
        this.#reapThenRetry(translated, once, undefined),
      );
    }
  }

  /**
   * releaseLocks' DELETE run at once and synchronously where the connection allows it
   * (see `ServiceConnection.synchronousNow`); undefined when it cannot (nothing was
   * sent). "Busy" goes on the `usual` way, after the pause that way makes after a busy try.
   */
  #releaseNow(statement: SqlStatement, usual: () => Promise<number>): Promise<number> | undefined {
    const dataSource = this.#connection.synchronousNow;
    if (dataSource === undefined) return undefined;
    try {
      return Promise.resolve(this.#connection.autocommitNow(dataSource, statement));
    } catch (error) {
      return this.#table.isContention(error) ? afterBusyPause(usual) : Promise.reject(error);
    }
  }

  /** One try of acquireLocks: on the caller's transaction, in a session's unit, or the service's own way. */
  #acquireOnce(
    owner: string,
    locks: readonly RequestedLock[],
    retry: Readonly<RetryOptions>,
    callerRunner: QueryRunner | undefined,
    session: SlotLockSession | undefined,
  ): Promise<void> {
    if (callerRunner !== undefined) {
      return acquireInCallerTransaction(
        this.#table,
        callerRunner,
        owner,
        locks,
        this.#readLockMap,
        session && (() => guarded(this.#table, callerRunner, () => this.#sessions.renewIn(session, callerRunner))),
      );
    }
    // A session's locks are taken in a transaction that first checks it still lives.
    if (session !== undefined) return this.#unit(owner, locks, retry, 'acquireLocks', session, noWork, undefined);
    return this.#acquireWithRetry(owner, locks, retry);
  }

  /** One try of acquireSlot, on the caller's transaction, in a session's transaction, or in autocommit statements. */
  async #slotOnce(
    owner: string,
    family: SlotFamily,
    retry: Readonly<RetryOptions>,
    callerRunner: QueryRunner | undefined,
    session: SlotLockSession | undefined,
  ): Promise<AcquiredSlot> {
    try {
      if (callerRunner !== undefined) {
        return await inCallerTransaction(this.#table, callerRunner, transactionGone, async () => {
          if (session !== undefined) {
            await guarded(this.#table, callerRunner, () => this.#sessions.renewIn(session, callerRunner));
          }
          return takeSlot(family, callerSlotTries(this.#table, callerRunner, owner, family, this.#readLockMap));
        });
      }
      if (session !== undefined) {
        return await retryOnContention(
          retry,
          this.#isContentionOrRolledBack,
          () =>
            this.#connection.exclusive(
              (dataSource) =>
                this.#connection.transaction(
                  dataSource,
                  async (runner) => {
                    await this.#sessions.checkLive(session, runner);
                    const taken = await takeSlot(
                      family,
                      callerSlotTries(this.#table, runner, owner, family, this.#readLockMap),
                    );
                    await this.#sessions.renewIn(session, runner); // its end counts from this COMMIT
                    return taken;
                  },
                  this.#table.dialect.slotScanIsolation,
                ),
              true,
            ),
          reportRetry(owner, 'acquireSlot'),
        );
      }
      return await takeSlot(
        family,
        serviceSlotTries({
          table: this.#table,
          connection: this.#connection,
          owner,
          family,
          retry,
          readLockMap: this.#readLockMap,
          onRetry: reportRetry(owner, 'acquireSlot'),
        }),
      );
    } catch (error) {
      throw error instanceof ContentionExhausted
        ? new SlotLockException({ failure: 'contention', lockMap: {}, attempts: error.attempts, cause: error.error })
        : error;
    }
  }

  /**
   * One unit of the service's own transaction: a session's check, the locks, `work`, the
   * session's renewal, and COMMIT (unless `signal` aborted before it); contention anywhere
   * retries the whole unit. The session is read at the start without locking its row (its
   * heartbeat goes on during `work`) and renewed last, holding its row until COMMIT: a
   * session lost or closed meanwhile commits nothing.
   */
  async #unit<T>(
    owner: string,
    locks: readonly RequestedLock[],
    retry: Readonly<RetryOptions>,
    operation: SlotLockRetryEvent['operation'],
    session: SlotLockSession | undefined,
    work: (manager: EntityManager) => T | Promise<T>,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    try {
      return await retryOnContention(
        retry,
        this.#isContentionOrRolledBack,
        () =>
          this.#connection.exclusive(
            (dataSource) =>
              this.#connection.transaction(dataSource, async (runner) => {
                if (session !== undefined) await this.#sessions.checkLive(session, runner);
                await insertOrReport(this.#table, runner, owner, locks);
                const result = await runWork(this.#table, runner, work);
                signal?.throwIfAborted(); // rolls the unit back
                // The session's end counts from this COMMIT, and no reaper can delete it before.
                if (session !== undefined) await this.#sessions.renewIn(session, runner);
                return result;
              }),
            true,
          ),
        reportRetry(owner, operation),
      );
    } catch (error) {
      throw error instanceof ContentionExhausted
        ? await this.#translateAcquireError(error, locks, error.attempts)
        : error;
    }
  }

  /** A nested acquireLocks({ manager }) that met a deadlock reports it as a SlotLockException. */
  readonly #isContentionOrRolledBack = (error: unknown): boolean =>
    this.#table.isContention(error) || (error instanceof SlotLockException && error.transactionRolledBack);

  /**
   * Runs `attempt`; when a lock was held by an owner whose session has expired, reaps it
   * (its session and its locks) and tries again, so that a dead process's locks are free
   * without any reaper running (SPEC 9).
   */
  #reapingHolders<T>(attempt: () => Promise<T>, callerRunner?: QueryRunner): Promise<T> {
    return attempt().catch((error: unknown) => this.#reapThenRetry(error, attempt, callerRunner));
  }

  async #reapThenRetry<T>(
    error: unknown,
    attempt: () => Promise<T>,
    callerRunner: QueryRunner | undefined,
  ): Promise<T> {
    let failure = error;
    for (let round = 0; round < REAP_ROUNDS; round += 1) {
      if (!(failure instanceof SlotLockException) || failure.failure !== 'held' || failure.transactionRolledBack) {
        throw failure;
      }
      const holders = Object.values(failure.getLockMap());
      if (holders.length === 0) throw failure;
      const original = failure;
      const reaped = await this.#sessions.reapHolders(holders, callerRunner).catch((reapError: unknown) => {
        // A reap that cost the caller's transaction says so; any other failure of it leaves the conflict as it was.
        if (reapError instanceof SlotLockException && reapError.transactionRolledBack) throw reapError;
        return 0;
      });
      if (reaped === 0) throw original;
      try {
        return await attempt();
      } catch (next) {
        failure = next;
      }
    }
    throw failure;
  }

  /** Gives back the locks a call took after its signal aborted (SPEC 10: an aborted call holds nothing). */
  #giveBack(owner: string, locks: readonly RequestedLock[], retry: Readonly<RetryOptions>): Promise<void> {
    return retryOrDriverError(retry, this.#isContention, () =>
      this.#connection.exclusive((dataSource) =>
        this.#connection.transaction(dataSource, (runner) =>
          this.#table.deleteInserted(runner, owner, locks, locks.length),
        ),
      ),
    );
  }

  /** Who holds `locks`, read on the service's own connection right after a failure. */
  readonly #readLockMap = (locks: readonly RequestedLock[]): Promise<Record<string, string>> =>
    this.#connection
      .exclusive((dataSource) => this.#table.readLockMap(locks, dataSource))
      // Not read in time (SQLite: the busy timeout ran out in the queue): the failure stands, its map empty.
      .catch(() => ({}));

  #retryFor(options: SlotLockCallOptions | CommitWithLocksOptions): Readonly<RetryOptions> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    return resolveRetry(this.#options.retry, options.retry, 'options.retry');
  }

  #acquireWithRetry(owner: string, locks: readonly RequestedLock[], retry: Readonly<RetryOptions>): Promise<void> {
    let attempts = 0;
    return retryOnContention(
      retry,
      this.#isContention,
      (attemptNumber) => {
        attempts = attemptNumber;
        return this.#connection.exclusive((dataSource) =>
          acquireInServiceTransaction(this.#table, this.#connection, dataSource, owner, locks),
        );
      },
      reportRetry(owner, 'acquireLocks'),
    ).catch(async (error: unknown) => {
      throw await this.#translateAcquireError(error, locks, attempts);
    });
  }

  readonly #isContention = (error: unknown): boolean => this.#table.isContention(error);

  /** The caller's runner when the call has a manager; the DataSources are only looked up then. */
  #callerRunnerOf(options: SlotLockCallOptions): QueryRunner | undefined {
    return options.manager === undefined ? undefined : callerRunnerOf(options.manager, this.#connection.dataSources());
  }

  /** Turns what an acquisition threw into what its caller gets (SPEC 4.2 to 4.4). */
  async #translateAcquireError(error: unknown, locks: readonly RequestedLock[], attempts: number): Promise<unknown> {
    if (error instanceof ContentionExhausted) {
      return new SlotLockException({
        failure: 'contention',
        lockMap: await this.#readLockMap(locks),
        attempts: error.attempts,
        cause: error.error,
      });
    }
    if (this.#table.classify(error) === 'conflict') {
      return new SlotLockException({
        failure: 'held',
        lockMap: await this.#readLockMap(locks),
        attempts,
        cause: driverCause(error),
      });
    }
    return error;
  }
}

/** An acquisition that has taken its locks already (see `#acquireNow`). */
const DONE: Promise<void> = Promise.resolve();

/** The work of a session's acquisition: the locks alone. */
function noWork(): void {}

/** The keys of `locks`, for an event (computed only when someone listens). */
function lockKeysOf(locks: readonly RequestedLock[]): () => string[] {
  return () => locks.map((lock) => lock.lockKey);
}

/** Publishes a SlotLockException on the conflict channel, and hands back what was thrown. */
function reportConflict(owner: string, lockKeys: () => readonly string[], error: unknown): unknown {
  if (error instanceof SlotLockException) {
    publish.conflict(() => ({
      ownerPHID: owner,
      lockKeys: lockKeys(),
      failure: error.failure,
      lockMap: error.getLockMap(),
    }));
  }
  return error;
}

function reportRetry(
  owner: string,
  operation: SlotLockRetryEvent['operation'],
): (error: unknown, attempt: number) => void {
  return (error, attempt) => {
    const driverError = driverErrorOf(error);
    publish.retry(() => ({ ownerPHID: owner, operation, attempt, code: driverError?.errno ?? driverError?.code }));
  };
}
