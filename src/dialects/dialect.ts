import type { DataSource, QueryRunner } from 'typeorm';

/** An isolation level as TypeORM's `startTransaction` takes it. */
export type IsolationLevel = NonNullable<Parameters<QueryRunner['startTransaction']>[0]>;
import type { AutocommitQuery } from './direct-query';
import type { SessionSql } from './session-sql';
import type { ReleaseWakeups } from '../waiting/wait-for-locks';

/**
 * How a driver error bears on a lock: `conflict` (a lock is held), `contention`
 * (deadlock, lock-wait timeout, serialization or cluster certification failure: worth
 * retrying), or `other` (everything else, passed through unchanged).
 */
export type DriverErrorKind = 'conflict' | 'contention' | 'other';

/** One parameterized statement. */
export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/** An INSERT of lock rows, with how many rows it must insert to have taken every lock. */
export interface InsertStatement extends SqlStatement {
  readonly rowCount: number;
}

/** Anything that runs SQL: a DataSource or a QueryRunner. */
export interface Queryable {
  query(sql: string, parameters?: unknown[]): Promise<unknown>;
}

/** A lock about to be written: what one row of the table holds besides its owner. */
export interface LockRow {
  readonly lockIndex: string;
  readonly lockKey: string;
}

/**
 * Everything that differs between database engines, in one place: the DDL, the SQL
 * text, the error codes and the statement-size limits. The service only orchestrates.
 */
export interface SlotLockDialect {
  /** TypeORM data source types this dialect serves. */
  readonly dataSourceTypes: readonly string[];
  /** True when any failed statement aborts the whole transaction (PostgreSQL). */
  readonly abortsTransactionOnError: boolean;
  /** Most rows one INSERT may carry (the engine's limit on bound parameters). */
  readonly maxRowsPerStatement: number;
  /** False where a key or owner holding a NUL character cannot be stored as written (PostgreSQL `text`). */
  readonly storesNul: boolean;
  /** True when every query runner shares one connection (SQLite): the service then serializes its own work. */
  readonly singleConnection: boolean;
  /** Creates the lock table and its indexes (the migration's `up`). */
  createTable(runner: QueryRunner, table: string): Promise<void>;
  /** Drops the lock table (the migration's `down`). */
  dropTable(runner: QueryRunner, table: string): Promise<void>;
  /** Quotes a table name, `schema.table` included. */
  quoteTable(table: string): string;
  /**
   * The table the DataSource's migrations created for `table`: PostgreSQL qualifies an
   * unqualified name with the DataSource's `schema`, as TypeORM does; the others keep it.
   */
  tableOf(dataSource: DataSource, table: string): string;
  /**
   * A multi-row INSERT of `rows[start]` to `rows[end - 1]` for `ownerPHID` (all of
   * `rows` by default): a chunk is sent without copying it out of the whole set. It
   * either inserts all of them or fails; where the engine allows, it reports a held lock
   * by inserting none instead of failing.
   */
  insertLocks(
    table: string,
    ownerPHID: string,
    rows: readonly LockRow[],
    start?: number,
    end?: number,
  ): InsertStatement;
  /**
   * One statement that takes a slot of `candidates` that nobody holds (the candidates
   * come in random order: any free one will do), for `ownerPHID`, and returns a row
   * `{ taken, free }`: the key taken (or null) and, where the engine can lose a race
   * (PostgreSQL), how many candidates it saw free (a free one lost to a concurrent insert
   * shows as `taken` null with `free` > 0). Undefined where the engine cannot do it without
   * locking reads: on MySQL an INSERT … SELECT takes shared next-key locks on what it
   * reads under REPEATABLE READ, so callers racing for one family would deadlock.
   */
  readonly insertFirstFree?: (table: string, ownerPHID: string, candidates: readonly LockRow[]) => SqlStatement;
  /**
   * The first slot `n` at or after `start` (wrapping round to 0) and below `limit` whose
   * key `${prefix}${n})` nobody holds, found by a scan of the lock table on the server (no
   * key travels to the client): a row `{ free }`, null when every slot is held. Only keys
   * written exactly so count (no leading zeros, nothing after the digits).
   */
  selectFirstFreeSlot(table: string, prefix: string, limit: number, start: number): SqlStatement;
  /** Rows whose index is one of `indexes`. */
  selectByIndexes(table: string, indexes: readonly string[]): SqlStatement;
  /** Rows held by one owner, oldest first. */
  selectByOwner(table: string, ownerPHID: string): SqlStatement;
  /** Deletes one owner's rows. */
  deleteByOwner(table: string, ownerPHID: string): SqlStatement;
  /** Deletes the rows of `ownerPHID` among `indexes`: what one call inserted, undone exactly. */
  deleteOwnedIndexes(table: string, ownerPHID: string, indexes: readonly string[]): SqlStatement;
  /** Classifies a driver error (or TypeORM's `QueryFailedError` around it). */
  classify(error: unknown): DriverErrorKind;
  /**
   * True while the transaction on `runner` can still commit: asked after a statement in
   * it failed (PostgreSQL aborts the transaction on any error; MySQL rolls it back on a
   * deadlock).
   */
  transactionIsOpen(runner: QueryRunner): Promise<boolean>;
  /**
   * True when `error` has certainly ended the transaction it happened in, so that later
   * statements on the connection would run on their own (a MySQL deadlock). Synchronous:
   * asked for every failed statement of `work`.
   */
  endsTransaction(error: unknown): boolean;
  /** True when the server has rolled back the caller's whole transaction because of `error`. */
  rollsBackTransaction(error: unknown, runner: QueryRunner): Promise<boolean>;
  /** The largest statement the server accepts, in bytes. */
  readMaxStatementBytes(db: Queryable): Promise<number>;
  /** Bytes one row adds to an INSERT at most, after the driver escapes it, for an owner of `ownerBytes` UTF-8 bytes. */
  rowBytes(ownerBytes: number, row: LockRow): number;
  /**
   * A faster way to run one autocommit statement than a query runner, logged and failing
   * as the runner would; used while `canSkipQueryRunner` holds for the DataSource.
   */
  readonly autocommitQuery: AutocommitQuery;
  /**
   * {@link autocommitQuery} run synchronously, where the driver answers so (better-sqlite3):
   * returns the rows changed or throws. Undefined for drivers that answer later.
   */
  readonly autocommitNow?: (dataSource: DataSource, statement: SqlStatement) => number;
  /**
   * The isolation of a transaction of the service's own that reads slots and then inserts
   * one (a session's `acquireSlot`): MySQL's REPEATABLE READ would read every batch in the
   * snapshot of the first, and report free slots taken since as lost races. Undefined
   * where the default reads what is committed (PostgreSQL, SQLite).
   */
  readonly slotScanIsolation?: IsolationLevel;
  /** The session table's DDL and statements (SPEC 9). */
  readonly sessions: SessionSql;
  /**
   * What wakes a DataSource's waiters when a lock is released, where the engine can tell
   * (PostgreSQL `LISTEN`/`NOTIFY`); undefined where waiters only poll (SPEC 10).
   */
  readonly releaseWakeups?: (dataSource: DataSource) => ReleaseWakeups;
}
