import type { QueryRunner } from 'typeorm';

/**
 * How a driver error bears on a lock: `conflict` (a lock is held), `contention`
 * (deadlock, lock-wait timeout, cluster certification failure: worth retrying), or
 * `other` (everything else, passed through unchanged).
 */
export type DriverErrorKind = 'conflict' | 'contention' | 'other';

/** One parameterized statement. */
export interface SqlStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
}

/**
 * Everything that differs between database engines, in one place: the DDL, the SQL
 * text, the error codes and the statement-size limit. The service only orchestrates.
 */
export interface SlotLockDialect {
  /** TypeORM data source types this dialect serves. */
  readonly dataSourceTypes: readonly string[];
  /** `CREATE TABLE` for the lock table, byte-compatible with Phorge where it applies. */
  createTableSql(table: string): string;
  /** `DROP TABLE` for the migration's `down`. */
  dropTableSql(table: string): string;
  /** Quotes a table name, `schema.table` included. */
  quoteTable(table: string): string;
  /** A multi-row INSERT of `rows` as (ownerPHID, lockIndex, lockKey) triples. */
  insertLocks(table: string, rows: readonly LockRow[]): SqlStatement;
  /** Rows whose index is one of `indexes`, as `lockKey`, `ownerPHID` (and the rest). */
  selectByIndexes(table: string, indexes: readonly string[]): SqlStatement;
  /** Rows held by one owner. */
  selectByOwner(table: string, ownerPHID: string): SqlStatement;
  /** Deletes one owner's rows. */
  deleteByOwner(table: string, ownerPHID: string): SqlStatement;
  /** Classifies a driver error (or TypeORM's `QueryFailedError` around it). */
  classify(error: unknown): DriverErrorKind;
  /** True when the server has rolled back the whole transaction because of `error`. */
  rollsBackTransaction(error: unknown, runner: QueryRunner): Promise<boolean>;
  /** The largest statement the server accepts, in bytes. */
  readMaxStatementBytes(runner: QueryRunner): Promise<number>;
  /** Bytes one row adds to an INSERT at most, after the driver escapes it. */
  rowBytes(row: LockRow): number;
}

/** A lock about to be written: what one row of the table holds. */
export interface LockRow {
  readonly ownerPHID: string;
  readonly lockIndex: string;
  readonly lockKey: string;
}
