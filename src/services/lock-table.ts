import type { QueryRunner } from 'typeorm';
import { changeThroughTypeorm, queryThroughTypeorm } from '../compat/typeorm-driver';
import type { DriverErrorKind, InsertStatement, Queryable, SlotLockDialect, SqlStatement } from '../dialects/dialect';
import type { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';
import { classifyError } from '../errors/classify-error';
import type { RequestedLock } from './check-input';
import { chunkEnds } from './chunk-rows';
import { toSlotLockEntity, type RawSlotLockRow } from './slot-lock-rows';

/**
 * Lock indexes in one SELECT or undoing DELETE: about 16 bytes each in MySQL's text, so
 * 80 KB, within {@link MEMORY_BOUND_BYTES} and far below any packet limit.
 */
const MAX_INDEXES_PER_STATEMENT = 5_000;

/** Bytes kept free in a statement for its fixed text (`INSERT INTO … VALUES`). */
const STATEMENT_OVERHEAD_BYTES = 1024;

/**
 * Most bytes one INSERT of several rows carries (its text on MySQL, where mysql2 writes
 * the parameters into it; its parameters elsewhere), however much the server accepts:
 * what bounds the client's memory. V8 keeps a string or buffer of more than 128 KiB in
 * its large-object space; a statement's text is alive while the statement is on the
 * wire, so a garbage collection meanwhile moves it to the old generation, where it stays
 * until the next full collection, statement after statement. Below that size, each
 * statement's text and mysql2's pieces of it (about twice the text) die young.
 *
 * Measured with 50,000 keys of 200 bytes on MariaDB (max_allowed_packet 16 MiB), peak RSS
 * growth against the key bytes: statements of 16 MiB 9x, 1 MiB 1.4x, 256 KiB 1.3x,
 * 128 KiB 0.6x, 64 KiB 0.7x; the acquisition took as long at every size (about 0.6 s,
 * within noise): a round trip per 128 KiB is little next to the insert itself.
 */
export const MEMORY_BOUND_BYTES = 128 * 1024;

/**
 * The INSERTs of one acquisition: `locks` in order, split at `ends` (the end, exclusive,
 * of each statement's rows; the last is `locks.length`). Statements are built from it
 * one at a time ({@link LockTable.insertStatement}).
 */
export interface InsertPlan {
  readonly owner: string;
  readonly locks: readonly RequestedLock[];
  readonly ends: readonly number[];
}

/**
 * The lock table of one DataSource, as every way of owning a transaction sees it: the
 * engine's dialect, the statements that insert and read locks, and what a driver
 * error means. Whoever runs the statements (autocommit, the service's transaction or
 * the caller's) asks here for them.
 */
export class LockTable {
  #maxStatementBytes: Promise<number> | undefined;
  #maxStatementBytesRead: number | undefined;

  constructor(
    readonly dialect: SlotLockDialect,
    /** The table's name as the dialect quotes it, `schema.table` included. */
    readonly name: string,
  ) {}

  /** What a driver error means for a lock (see {@link classifyError}). */
  classify(error: unknown): DriverErrorKind {
    return classifyError(this.dialect, error);
  }

  isContention(error: unknown): boolean {
    return this.classify(error) === 'contention';
  }

  /**
   * How the INSERTs that take `locks` for `owner` split them: statements of at most
   * {@link MEMORY_BOUND_BYTES} (a larger key alone in one), within what the server
   * accepts. Only the chunks' bounds are worked out here; each statement is built by
   * {@link insertStatement} just before it is sent, so that one statement, and not every
   * one, is in memory at a time. Several statements must run in one transaction to stay
   * all-or-nothing.
   */
  planInserts(db: Queryable, owner: string, locks: readonly RequestedLock[]): InsertPlan | Promise<InsertPlan> {
    if (locks.length === 0) return { owner, locks, ends: [] }; // commitWithLocks with no keys: the work alone
    // Synchronous once the server's limit is known: no promise on the hot path.
    const maxBytes = this.#readMaxStatementBytes(db);
    return typeof maxBytes === 'number'
      ? this.#plan(owner, locks, maxBytes)
      : maxBytes.then((bytes) => this.#plan(owner, locks, bytes));
  }

  #plan(owner: string, locks: readonly RequestedLock[], maxBytes: number): InsertPlan {
    const dialect = this.dialect;
    const limitBytes = maxBytes - STATEMENT_OVERHEAD_BYTES;
    const targetBytes = Math.min(limitBytes, MEMORY_BOUND_BYTES - STATEMENT_OVERHEAD_BYTES);
    if (locks.length <= dialect.maxRowsPerStatement && upperBoundBytes(owner, locks) <= targetBytes) {
      // The common case, a handful of short keys: one statement, without weighing every row.
      return { owner, locks, ends: [locks.length] };
    }
    const ownerBytes = Buffer.byteLength(owner);
    const ends = chunkEnds(locks, { limitBytes, targetBytes, maxRows: dialect.maxRowsPerStatement }, (lock) =>
      dialect.rowBytes(ownerBytes, lock),
    );
    return { owner, locks, ends };
  }

  /** The `chunk`-th INSERT of `plan`, built now. */
  insertStatement(plan: InsertPlan, chunk: number): InsertStatement {
    const start = chunk === 0 ? 0 : plan.ends[chunk - 1]!;
    return this.dialect.insertLocks(this.name, plan.owner, plan.locks, start, plan.ends[chunk]);
  }

  /** The DELETE of every lock `owner` holds. */
  deleteByOwner(owner: string): SqlStatement {
    return this.dialect.deleteByOwner(this.name, owner);
  }

  /**
   * Deletes exactly the rows of the first `count` of `locks` for `owner`: what a failed
   * call's earlier statements inserted (statements take `locks` in order), undone inside
   * the caller's transaction, where rolling back to a savepoint would also undo what the
   * caller ran meanwhile.
   */
  async deleteInserted(
    runner: QueryRunner,
    owner: string,
    locks: readonly RequestedLock[],
    count: number,
  ): Promise<void> {
    const perStatement = Math.min(this.dialect.maxRowsPerStatement, MAX_INDEXES_PER_STATEMENT);
    for (let start = 0; start < count; start += perStatement) {
      const indexes = locks.slice(start, Math.min(count, start + perStatement)).map((lock) => lock.lockIndex);
      const { sql, params } = this.dialect.deleteOwnedIndexes(this.name, owner, indexes);
      await changeThroughTypeorm(runner, sql, [...params]);
    }
  }

  /** The locks `owner` holds, oldest first, read on `db`. */
  loadByOwner(owner: string, db: Queryable): Promise<DrydockSlotLock[]> {
    return this.select(this.dialect.selectByOwner(this.name, owner), db);
  }

  /** The held locks among `locks`, in the order asked, read on `db`. */
  async loadHeld(locks: readonly RequestedLock[], db: Queryable): Promise<DrydockSlotLock[]> {
    if (locks.length === 0) return [];
    const held: DrydockSlotLock[] = [];
    // Chunked, so that a 50,000-key lookup (the lock map of a failed acquisition) stays
    // within the engine's parameter limit and the service's memory bound.
    const perStatement = Math.min(this.dialect.maxRowsPerStatement, MAX_INDEXES_PER_STATEMENT);
    for (let start = 0; start < locks.length; start += perStatement) {
      const chunk = locks.slice(start, start + perStatement).map((lock) => lock.lockIndex);
      held.push(...(await this.select(this.dialect.selectByIndexes(this.name, chunk), db)));
    }
    const order = new Map(locks.map((lock, position) => [lock.lockIndex, position]));
    return held.sort((a, b) => order.get(a.lockIndex)! - order.get(b.lockIndex)!);
  }

  /**
   * Who holds the requested locks, `{ [lockKey]: ownerPHID }`, read right after a
   * failure on `db`; empty when the holders cannot be read now (SPEC 4.2 allows it: the
   * conflict stands either way).
   */
  async readLockMap(locks: readonly RequestedLock[], db: Queryable): Promise<Record<string, string>> {
    let held: DrydockSlotLock[];
    try {
      held = await this.loadHeld(locks, db);
    } catch {
      return {};
    }
    return Object.fromEntries(held.map((lock) => [lock.lockKey, lock.ownerPHID]));
  }

  async select(statement: SqlStatement, db: Queryable): Promise<DrydockSlotLock[]> {
    const rows = (await queryThroughTypeorm(db, statement.sql, [...statement.params])) as RawSlotLockRow[];
    return rows.map(toSlotLockEntity);
  }

  #readMaxStatementBytes(db: Queryable): Promise<number> | number {
    // Read once per service: the server's limit does not change under a running app.
    if (this.#maxStatementBytesRead !== undefined) return this.#maxStatementBytesRead;
    this.#maxStatementBytes ??= this.dialect.readMaxStatementBytes(db).then(
      (bytes) => (this.#maxStatementBytesRead = bytes),
      (error: unknown) => {
        this.#maxStatementBytes = undefined;
        throw error;
      },
    );
    return this.#maxStatementBytes;
  }
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
