import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import type { DriverErrorKind, InsertStatement, Queryable, SlotLockDialect, SqlStatement } from '../dialects/dialect';
import type { AutocommitQuery } from '../dialects/direct-query';
import { dialectFor } from '../dialects';
import type { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';
import { publish } from '../diagnostics/slot-lock-channels';
import { classifyError, LocksHeldError } from '../errors/classify-error';
import { driverErrorOf } from '../errors/driver-error-of';
import { SlotLockException } from '../errors/slot-lock.exception';
import { checkLimit, checkLockKey, checkOwner, prepareLocks, type RequestedLock } from './check-input';
import { chunkRows } from './chunk-rows';
import { serializePerConnection } from './serialize-per-connection';
import { ContentionExhausted, retryOnContention } from './retry-on-contention';
import { toSlotLockEntity, type RawSlotLockRow } from './slot-lock-rows';
import {
  resolveRetry,
  resolveSlotLockOptions,
  type ResolvedSlotLockOptions,
  type RetryOptions,
  type SlotLockCallOptions,
  type SlotLockServiceOptions,
} from './slot-lock.options';

/** The slot taken by {@link SlotLockService.acquireSlot}. */
export interface AcquiredSlot {
  /** The slot's number, from 0 to `limit - 1`. */
  readonly slot: number;
  /** The lock taken: `${name}.slot(${slot})`. */
  readonly lockKey: string;
}

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
}

/** Name of the savepoint that keeps a chunked acquisition in a caller's transaction all-or-nothing. */
const SAVEPOINT = 'drydock_slotlock_acquire';

/** How long a conflict inside a caller's transaction waits for a connection to read its lock map. */
const LOCK_MAP_WAIT_MS = 2000;

/** Bytes kept free in a statement for its fixed text (`INSERT INTO … VALUES`). */
const STATEMENT_OVERHEAD_BYTES = 1024;

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
  readonly #dataSource: DataSource;
  readonly #dialect: SlotLockDialect;
  readonly #options: ResolvedSlotLockOptions;
  #maxStatementBytes: Promise<number> | undefined;
  #maxStatementBytesRead: number | undefined;
  #autocommitQuery: AutocommitQuery | null | undefined;

  /**
   * @param dataSource - a TypeORM data source of type `mysql`, `mariadb`, `postgres` or `better-sqlite3`
   *   (initialized before the first call).
   * @param options - see {@link SlotLockServiceOptions}; every field has a default.
   */
  constructor(dataSource: DataSource, options: SlotLockServiceOptions = {}) {
    if (typeof dataSource !== 'object' || dataSource === null || typeof dataSource.createQueryRunner !== 'function') {
      throw new TypeError('dataSource must be a TypeORM DataSource');
    }
    this.#dataSource = dataSource;
    this.#dialect = dialectFor(dataSource);
    this.#options = resolveSlotLockOptions(options);
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
  async acquireLocks(ownerPHID: string, lockKeys: Iterable<string>, options: SlotLockCallOptions = {}): Promise<void> {
    const owner = checkOwner(ownerPHID);
    const locks = prepareLocks(lockKeys, this.#options.maxKeyBytes);
    const retry = this.#retryFor(options);
    const manager = checkManager(options.manager);
    if (locks.length === 0) return;

    try {
      if (manager !== undefined) {
        await this.#acquireInCallerTransaction(manager.queryRunner!, owner, locks);
      } else {
        await this.#acquireWithRetry(owner, locks, retry);
      }
    } catch (error) {
      throw reportConflict(owner, locks, error);
    }
    publish.acquired(() => ({
      ownerPHID: owner,
      lockKeys: locks.map((lock) => lock.lockKey),
      inCallerTransaction: manager !== undefined,
    }));
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
  async releaseLocks(ownerPHID: string, options: SlotLockCallOptions = {}): Promise<number> {
    const owner = checkOwner(ownerPHID);
    const retry = this.#retryFor(options);
    const manager = checkManager(options.manager);
    const { sql, params } = this.#dialect.deleteByOwner(this.#options.tableName, owner);

    let count: number;
    if (manager !== undefined) {
      count = (await manager.queryRunner!.query(sql, [...params], true)).affected ?? 0;
    } else {
      try {
        count = await retryOnContention(
          retry,
          (error) => this.#isContention(error),
          () => this.#exclusive(() => this.#autocommit({ sql, params })),
          reportRetry(owner, 'releaseLocks'),
        );
      } catch (error) {
        // A release has no lock map to report: the driver's own error says what happened.
        throw error instanceof ContentionExhausted ? error.error : error;
      }
    }
    publish.released(() => ({ ownerPHID: owner, count }));
    return count;
  }

  /** The locks `ownerPHID` holds, as entities, oldest first (SPEC 4.6). */
  async loadLocks(ownerPHID: string): Promise<DrydockSlotLock[]> {
    const owner = checkOwner(ownerPHID);
    return this.#select(this.#dialect.selectByOwner(this.#options.tableName, owner));
  }

  /**
   * The held locks whose index matches any of `lockKeys` (SPEC 4.6). A lock found here
   * may carry another key than the one asked for, when two keys share a digest.
   */
  async loadHeldLocks(lockKeys: Iterable<string>): Promise<DrydockSlotLock[]> {
    const locks = prepareLocks(lockKeys, this.#options.maxKeyBytes);
    return this.#loadHeld(locks);
  }

  /** True when `lockKey` is not held by anyone. */
  async isLockFree(lockKey: string): Promise<boolean> {
    checkLockKey(lockKey, this.#options.maxKeyBytes, 'lockKey');
    return this.areLocksFree([lockKey]);
  }

  /** True when none of `lockKeys` is held by anyone. */
  async areLocksFree(lockKeys: Iterable<string>): Promise<boolean> {
    return (await this.loadHeldLocks(lockKeys)).length === 0;
  }

  /**
   * Takes one free slot of a limited family: `${name}.slot(0)` … `${name}.slot(limit-1)`
   * (SPEC 4.7). Free slots are tried in random order so that callers spread out;
   * rejects with {@link SlotLockException} listing the holders when all are held.
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
    const owner = checkOwner(ownerPHID);
    checkLockKey(name, this.#options.maxKeyBytes, 'name');
    checkLimit(limit);
    this.#retryFor(options);
    checkManager(options.manager);
    const slots = Array.from({ length: limit }, (_, slot) => ({ slot, lockKey: `${name}.slot(${slot})` }));
    const locks = prepareLocks(
      slots.map((slot) => slot.lockKey),
      this.#options.maxKeyBytes,
      'name (with its ".slot(N)" suffix)',
    );

    let held: DrydockSlotLock[];
    try {
      held = await retryOnContention(
        this.#retryFor(options),
        (error) => this.#isContention(error),
        () => this.#loadHeld(locks),
      );
    } catch (error) {
      throw reportConflict(owner, locks, await this.#translateAcquireError(error, locks, 1));
    }
    const heldKeys = new Set(held.map((lock) => lock.lockKey));
    const lockMap = new Map(held.map((lock) => [lock.lockKey, lock.ownerPHID]));
    for (const candidate of shuffle(slots.filter((slot) => !heldKeys.has(slot.lockKey)))) {
      try {
        await this.acquireLocks(owner, [candidate.lockKey], options);
        return candidate;
      } catch (error) {
        // Taken since we looked: try the next one, unless the caller's transaction is gone.
        if (!(error instanceof SlotLockException) || error.transactionRolledBack) throw error;
        for (const [key, holder] of Object.entries(error.getLockMap())) lockMap.set(key, holder);
      }
    }
    throw reportConflict(
      owner,
      locks,
      new SlotLockException({ failure: 'held', lockMap: Object.fromEntries(lockMap) }),
    );
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
    const owner = checkOwner(ownerPHID);
    const locks = prepareLocks(lockKeys, this.#options.maxKeyBytes);
    if (typeof work !== 'function') throw new TypeError('work must be a function (manager) => result');
    if (options.onConflict !== undefined && typeof options.onConflict !== 'function') {
      throw new TypeError('options.onConflict must be a function (exception) => void');
    }
    const retry = this.#retryFor(options);

    let result: T;
    try {
      result = await retryOnContention(
        retry,
        // A nested acquireLocks({ manager }) that met a deadlock reports it as a SlotLockException.
        (error) => this.#isContention(error) || (error instanceof SlotLockException && error.transactionRolledBack),
        () =>
          this.#exclusive(
            () =>
              this.#withRunner(async (runner) => {
                await runner.startTransaction();
                try {
                  await this.#insertOrReport(runner, owner, locks);
                  const result = await work(runner.manager);
                  await runner.commitTransaction();
                  return result;
                } catch (error) {
                  await rollbackQuietly(runner);
                  throw error;
                }
              }),
            true,
          ),
        reportRetry(owner, 'commitWithLocks'),
      );
    } catch (error) {
      const translated =
        error instanceof ContentionExhausted ? await this.#translateAcquireError(error, locks, error.attempts) : error;
      if (translated instanceof SlotLockException) {
        reportConflict(owner, locks, translated);
        if (options.onConflict !== undefined) await options.onConflict(translated);
      }
      throw translated;
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
   *
   * @example
   * ```ts
   * await slotLocks.withLocks(`deploy(${process.pid})`, ['deploy(production)'], () => deploy());
   * ```
   */
  async withLocks<T>(ownerPHID: string, lockKeys: Iterable<string>, fn: () => T | Promise<T>): Promise<T> {
    if (typeof fn !== 'function') throw new TypeError('fn must be a function');
    await this.acquireLocks(ownerPHID, lockKeys);
    let result: T;
    try {
      result = await fn();
    } catch (error) {
      // fn's own error is the one to see; a release failing as well is added, not swapped in.
      await this.releaseLocks(ownerPHID).catch((releaseError: unknown) => {
        throw new AggregateError([error, releaseError], 'fn failed, and releasing its locks failed too');
      });
      throw error;
    }
    await this.releaseLocks(ownerPHID);
    return result;
  }

  // --- internals -------------------------------------------------------------------

  #retryFor(options: SlotLockCallOptions | CommitWithLocksOptions): Readonly<RetryOptions> {
    if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
    return resolveRetry(this.#options.retry, options.retry, 'options.retry');
  }

  async #acquireWithRetry(
    owner: string,
    locks: readonly RequestedLock[],
    retry: Readonly<RetryOptions>,
  ): Promise<void> {
    let attempts = 0;
    try {
      await retryOnContention(
        retry,
        (error) => this.#isContention(error),
        (attemptNumber) => {
          attempts = attemptNumber;
          return this.#exclusive(() => this.#acquireOnce(owner, locks));
        },
        reportRetry(owner, 'acquireLocks'),
      );
    } catch (error) {
      throw await this.#translateAcquireError(error, locks, attempts);
    }
  }

  #classify(error: unknown): DriverErrorKind {
    return classifyError(this.#dialect, error);
  }

  #isContention(error: unknown): boolean {
    return this.#classify(error) === 'contention';
  }

  /** Service-owned work, one unit at a time where every runner shares one connection (SQLite). */
  #exclusive<T>(fn: () => Promise<T>, runsUserCode = false): Promise<T> {
    if (!this.#dialect.singleConnection) return fn();
    return serializePerConnection(
      this.#dataSource,
      (nested) => {
        if (!nested) this.#refuseForeignTransaction();
        return fn();
      },
      runsUserCode,
    );
  }

  /**
   * On SQLite, TypeORM runs everything on one connection through one query runner: while
   * someone else's transaction is open there, the service's own statements would become
   * part of it (and vanish with its rollback). Say so instead.
   */
  #refuseForeignTransaction(): void {
    const shared = (this.#dataSource.driver as { queryRunner?: QueryRunner }).queryRunner;
    if (shared?.isTransactionActive === true) {
      throw new Error(
        'drydock-slotlock: a transaction is open on this SQLite DataSource, whose one connection the ' +
          "service's own statements would join; pass { manager } from that transaction, or call after it ends",
      );
    }
  }

  async #withRunner<T>(fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.#dataSource.createQueryRunner();
    try {
      return await fn(runner);
    } finally {
      await runner.release();
    }
  }

  /** Runs one statement in autocommit and resolves to the rows it changed. */
  #autocommit(statement: SqlStatement): Promise<number> {
    // Decided once the data source is up: its driver and settings do not change after.
    this.#autocommitQuery ??= this.#dialect.autocommitQuery(this.#dataSource) ?? null;
    if (this.#autocommitQuery !== null) return this.#autocommitQuery(statement);
    return this.#withRunner(
      async (runner) => (await runner.query(statement.sql, [...statement.params], true)).affected ?? 0,
    );
  }

  /**
   * One attempt where the service owns the transaction. One statement runs in
   * autocommit: it is atomic by itself, and skipping BEGIN/COMMIT saves two round trips
   * (1.3x to 1.6x the cycles on MariaDB); several statements share one transaction.
   */
  async #acquireOnce(owner: string, locks: readonly RequestedLock[]): Promise<void> {
    const statements = await this.#insertStatements(this.#dataSource, owner, locks);
    if (statements.length === 1) {
      const statement = statements[0]!;
      if ((await this.#autocommit(statement)) < statement.rowCount) throw new LocksHeldError();
      return;
    }
    await this.#withRunner(async (runner) => {
      await runner.startTransaction();
      try {
        await insertAll(runner, statements);
        await runner.commitTransaction();
      } catch (error) {
        await rollbackQuietly(runner);
        throw error;
      }
    });
  }

  /** Inside a transaction the service opened: a conflict becomes a SlotLockException at once. */
  async #insertOrReport(runner: QueryRunner, owner: string, locks: readonly RequestedLock[]): Promise<void> {
    try {
      await insertAll(runner, await this.#insertStatements(runner, owner, locks));
    } catch (error) {
      if (this.#classify(error) !== 'conflict') throw error;
      await rollbackQuietly(runner);
      throw new SlotLockException({
        failure: 'held',
        // On this runner, rolled back: asking the pool for another connection while holding
        // this one could wait forever once every connection is held the same way.
        lockMap: await this.#readLockMap(locks, runner),
        cause: driverCause(error),
      });
    }
  }

  async #acquireInCallerTransaction(
    runner: QueryRunner,
    owner: string,
    locks: readonly RequestedLock[],
  ): Promise<void> {
    const statements = await this.#insertStatements(runner, owner, locks);
    // One MySQL statement is atomic and a failed one leaves the transaction usable;
    // several statements, or an engine that aborts the whole transaction on an error
    // (PostgreSQL), need a savepoint to undo only what this call did.
    const useSavepoint = statements.length > 1 || this.#dialect.abortsTransactionOnError;
    try {
      if (useSavepoint) await runner.query(`SAVEPOINT ${SAVEPOINT}`);
      await insertAll(runner, statements);
      if (useSavepoint) await runner.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    } catch (error) {
      const kind = this.#classify(error);
      const rolledBack = kind === 'other' ? false : await this.#dialect.rollsBackTransaction(error, runner);
      if (useSavepoint && !rolledBack) {
        await runner.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
        await runner.query(`RELEASE SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
      }
      if (kind === 'other') throw error;
      throw new SlotLockException({
        failure: kind === 'conflict' ? 'held' : 'contention',
        lockMap: await this.#readLockMapBesides(locks),
        transactionRolledBack: rolledBack,
        cause: driverCause(error),
      });
    }
  }

  async #insertStatements(db: Queryable, owner: string, locks: readonly RequestedLock[]): Promise<InsertStatement[]> {
    const dialect = this.#dialect;
    if (locks.length === 0) return []; // commitWithLocks with no keys: the work alone
    const rows = locks.map((lock) => ({ ownerPHID: owner, lockIndex: lock.lockIndex, lockKey: lock.lockKey }));
    const maxBytes = this.#readMaxStatementBytes(db);
    const budget = (typeof maxBytes === 'number' ? maxBytes : await maxBytes) - STATEMENT_OVERHEAD_BYTES;
    if (rows.length <= dialect.maxRowsPerStatement && upperBoundBytes(owner, locks) <= budget) {
      // The common case, a handful of short keys: one statement, without weighing every row.
      return [dialect.insertLocks(this.#options.tableName, rows)];
    }
    return chunkRows(rows, budget, dialect.maxRowsPerStatement, (row) => dialect.rowBytes(row)).map((chunk) =>
      dialect.insertLocks(this.#options.tableName, chunk),
    );
  }

  #readMaxStatementBytes(db: Queryable): Promise<number> | number {
    // Read once per service: the server's limit does not change under a running app.
    if (this.#maxStatementBytesRead !== undefined) return this.#maxStatementBytesRead;
    this.#maxStatementBytes ??= this.#dialect.readMaxStatementBytes(db).then(
      (bytes) => (this.#maxStatementBytesRead = bytes),
      (error: unknown) => {
        this.#maxStatementBytes = undefined;
        throw error;
      },
    );
    return this.#maxStatementBytes;
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
    if (this.#classify(error) === 'conflict') {
      return new SlotLockException({
        failure: 'held',
        lockMap: await this.#readLockMap(locks),
        attempts,
        cause: driverCause(error),
      });
    }
    return error;
  }

  /**
   * Who holds the requested locks, read right after the failure on `db` (by default a
   * pooled connection; an autocommit read sees the latest committed rows).
   */
  async #readLockMap(
    locks: readonly RequestedLock[],
    db: Queryable = this.#dataSource,
  ): Promise<Record<string, string>> {
    let held: DrydockSlotLock[];
    try {
      held = await this.#loadHeld(locks, db);
    } catch {
      // The conflict stands even if the holders cannot be read now (SPEC 4.2 allows an empty map).
      return {};
    }
    return Object.fromEntries(held.map((lock) => [lock.lockKey, lock.ownerPHID]));
  }

  /**
   * The lock map for a conflict inside a caller's transaction, read on another
   * connection: the caller's REPEATABLE READ snapshot could hide the holder's row. The
   * caller keeps its connection meanwhile, so the wait for a second one is bounded: with
   * every pooled connection held by such callers, the map comes back empty instead.
   */
  #readLockMapBesides(locks: readonly RequestedLock[]): Promise<Record<string, string>> {
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<Record<string, string>>((resolve) => {
      timer = setTimeout(() => resolve({}), LOCK_MAP_WAIT_MS);
      timer.unref();
    });
    return Promise.race([this.#readLockMap(locks), giveUp]).finally(() => clearTimeout(timer));
  }

  async #loadHeld(locks: readonly RequestedLock[], db: Queryable = this.#dataSource): Promise<DrydockSlotLock[]> {
    if (locks.length === 0) return [];
    const indexes = locks.map((lock) => lock.lockIndex);
    const held: DrydockSlotLock[] = [];
    // Chunked like inserts, so a 20,000-key lookup stays within the engine's parameter limit.
    for (let start = 0; start < indexes.length; start += this.#dialect.maxRowsPerStatement) {
      const chunk = indexes.slice(start, start + this.#dialect.maxRowsPerStatement);
      held.push(...(await this.#select(this.#dialect.selectByIndexes(this.#options.tableName, chunk), db)));
    }
    const order = new Map(locks.map((lock, position) => [lock.lockIndex, position]));
    return held.sort((a, b) => order.get(a.lockIndex)! - order.get(b.lockIndex)!);
  }

  async #select(statement: SqlStatement, db: Queryable = this.#dataSource): Promise<DrydockSlotLock[]> {
    const rows = (await db.query(statement.sql, [...statement.params])) as RawSlotLockRow[];
    return rows.map(toSlotLockEntity);
  }
}

/** Publishes a SlotLockException on the conflict channel, and hands back what was thrown. */
function reportConflict(owner: string, locks: readonly RequestedLock[], error: unknown): unknown {
  if (error instanceof SlotLockException) {
    publish.conflict(() => ({
      ownerPHID: owner,
      lockKeys: locks.map((lock) => lock.lockKey),
      failure: error.failure,
      lockMap: error.getLockMap(),
    }));
  }
  return error;
}

function reportRetry(
  owner: string,
  operation: 'acquireLocks' | 'releaseLocks' | 'commitWithLocks',
): (error: unknown, attempt: number) => void {
  return (error, attempt) => {
    const driverError = driverErrorOf(error);
    publish.retry(() => ({ ownerPHID: owner, operation, attempt, code: driverError?.errno ?? driverError?.code }));
  };
}

function checkManager(manager: EntityManager | undefined): EntityManager | undefined {
  if (manager === undefined) return undefined;
  const runner = (manager as Partial<EntityManager> | null)?.queryRunner;
  if (runner === undefined || !runner.isTransactionActive) {
    throw new TypeError(
      'options.manager must be the EntityManager of a transaction you started ' +
        '(dataSource.transaction(manager => ...)); leave it out to let the service run its own',
    );
  }
  return manager;
}

/**
 * More bytes than any dialect's statement can take for these rows: a UTF-16 unit is at
 * most 3 UTF-8 bytes, doubled again where MySQL escapes it, plus a row's punctuation.
 */
function upperBoundBytes(owner: string, locks: readonly RequestedLock[]): number {
  let units = 0;
  for (const lock of locks) units += lock.lockKey.length;
  return 6 * units + locks.length * (6 * owner.length + 2 * 12 + 64);
}

/** Runs insert statements in order; fewer rows than asked means a lock is held (PostgreSQL's quiet conflict). */
async function insertAll(runner: QueryRunner, statements: readonly InsertStatement[]): Promise<void> {
  for (const statement of statements) {
    const inserted = (await runner.query(statement.sql, [...statement.params], true)).affected ?? 0;
    if (inserted < statement.rowCount) throw new LocksHeldError();
  }
}

/** The driver error behind a conflict, if the engine reported one (PostgreSQL's quiet insert does not). */
function driverCause(error: unknown): unknown {
  return error instanceof LocksHeldError ? undefined : error;
}

async function rollbackQuietly(runner: QueryRunner): Promise<void> {
  if (!runner.isTransactionActive) return;
  try {
    await runner.rollbackTransaction();
  } catch {
    // The connection is gone or the server already rolled back: nothing is left to undo.
  }
}

function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
