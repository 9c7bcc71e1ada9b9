import type { QueryRunner } from 'typeorm';
import { sqliteConnectionOf } from '../../compat/typeorm-driver';
import { driverErrorOf } from '../../errors/driver-error-of';
import type { DriverErrorKind, InsertStatement, LockRow, SlotLockDialect, SqlStatement } from '../dialect';
import { portableTableMigration, type PortableColumnTypes } from '../portable-schema';
import { firstFreeSlotSql } from '../first-free-slot';
import { keptStatementText } from '../statement-text';
import { boundParameterSizing, quotedSql } from '../quoted-sql';
import { sqliteAutocommitNow, sqliteAutocommitQuery } from './direct-query';
import { sessionSql } from '../session-sql';

/** SQLite's text comparison is BINARY by default: byte-exact and case-sensitive. */
export const SQLITE_COLUMN_TYPES: PortableColumnTypes = {
  id: 'integer',
  ownerPHID: { type: 'varchar', length: 64 },
  lockIndex: { type: 'varchar', length: 12 },
  lockKey: 'text',
};

const sql = quotedSql(() => '?');

const insertText = keptStatementText(
  (table, rows) =>
    `INSERT INTO ${sql.quoteTable(table)} ("ownerPHID", "lockIndex", "lockKey") VALUES ` +
    placeholders(rows, '(?, ?, ?)'),
);

function placeholders(count: number, group: string): string {
  return new Array<string>(count).fill(group).join(', ');
}

/**
 * SQLite through better-sqlite3: one file, shared by several processes on one host.
 * Writers take turns on the file lock; a writer that waited longer than the busy
 * timeout gets SQLITE_BUSY, which is contention like a deadlock and is retried.
 * TypeORM gives every query runner the same connection, so the service serializes
 * its own work within a process (see `singleConnection`).
 */
export const sqliteDialect: SlotLockDialect = Object.freeze({
  dataSourceTypes: Object.freeze(['better-sqlite3']),
  abortsTransactionOnError: false,
  // better-sqlite3 binds strings with their length: a NUL is stored and read back.
  storesNul: true,
  singleConnection: true,
  // 32,766 bound parameters at most, three a row.
  maxRowsPerStatement: 10_000,

  quoteTable: sql.quoteTable,

  tableOf(_dataSource: unknown, table: string): string {
    return table;
  },

  ...portableTableMigration(SQLITE_COLUMN_TYPES),

  insertLocks(
    table: string,
    ownerPHID: string,
    rows: readonly LockRow[],
    start = 0,
    end = rows.length,
  ): InsertStatement {
    const params = new Array<unknown>(3 * (end - start));
    for (let i = start, p = 0; i < end; i += 1, p += 3) {
      const row = rows[i]!;
      params[p] = ownerPHID;
      params[p + 1] = row.lockIndex;
      params[p + 2] = row.lockKey;
    }
    return { sql: insertText(table, end - start), params, rowCount: end - start };
  },

  insertFirstFree(table: string, ownerPHID: string, candidates: readonly LockRow[]): SqlStatement {
    const params: unknown[] = [ownerPHID];
    for (const row of candidates) params.push(row.lockIndex, row.lockKey);
    const values = candidates.map(() => '(?, ?)').join(', ');
    const quoted = sql.quoteTable(table);
    // One writer at a time holds the file: what NOT EXISTS reads is what the INSERT meets.
    // No ORDER BY: the candidates are in random order already, and without one SQLite
    // stops at the first free candidate instead of looking every one up, then sorting.
    return {
      sql:
        `INSERT INTO ${quoted} ("ownerPHID", "lockIndex", "lockKey") ` +
        `SELECT ?, c.column1, c.column2 FROM (VALUES ${values}) AS c ` +
        `WHERE NOT EXISTS (SELECT 1 FROM ${quoted} h WHERE h."lockIndex" = c.column1) ` +
        `LIMIT 1 RETURNING "lockKey" AS taken`,
      params,
    };
  },

  selectFirstFreeSlot(table: string, prefix: string, limit: number, start: number): SqlStatement {
    // Cut as bytes: text functions stop at a NUL, which a family's name may hold.
    const key = 'CAST("lockKey" AS BLOB)';
    const bytesOfPrefix = Buffer.byteLength(prefix);
    return {
      sql: firstFreeSlotSql(
        sql.quoteTable(table),
        `CAST(substr(${key}, ? + 1, length(${key}) - ? - 1) AS TEXT)`,
        `substr(${key}, 1, ?) = ? AND substr(${key}, -1) = X'29'`,
        // length() of text stops at a NUL; that of the bytes does not: equal means no NUL.
        `m <> '' AND length(m) = length(CAST(m AS BLOB)) AND m NOT GLOB '*[^0-9]*' ` +
          `AND (m = '0' OR m NOT GLOB '0*') AND length(m) <= 16`,
        'CAST(m AS INTEGER)',
        '?',
        '?',
      ),
      params: [start, limit, bytesOfPrefix, bytesOfPrefix, bytesOfPrefix, Buffer.from(prefix, 'utf8')],
    };
  },

  selectByIndexes: sql.selectByIndexes,
  selectByOwner: sql.selectByOwner,
  deleteByOwner: sql.deleteByOwner,
  deleteOwnedIndexes: sql.deleteOwnedIndexes,

  classify(error: unknown): DriverErrorKind {
    // Not every error's code is a string (a DOMException's is a number, an app's anything).
    const found: unknown = driverErrorOf(error)?.code;
    const code = typeof found === 'string' ? found : '';
    // PRIMARYKEY: a session row of the same owner (the lock table's key is generated).
    if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'conflict';
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'contention';
    return 'other';
  },

  endsTransaction(): boolean {
    return false;
  },

  async transactionIsOpen(runner: QueryRunner): Promise<boolean> {
    // SQLite rolls a transaction back by itself on a few errors (SQLITE_FULL, SQLITE_IOERR…).
    return sqliteConnectionOf(runner.connection)?.inTransaction ?? true;
  },

  async rollsBackTransaction(): Promise<boolean> {
    // SQLITE_BUSY fails the statement only; the caller's transaction stays open.
    return false;
  },

  ...boundParameterSizing,

  autocommitQuery: sqliteAutocommitQuery,
  autocommitNow: sqliteAutocommitNow,

  sessions: sessionSql({
    quoteTable: sql.quoteTable,
    quoteColumn: (column) => `"${column}"`,
    placeholder: () => '?',
    nowMs: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
    owner: (ownerPHID) => ownerPHID,
    ownerType: 'varchar',
    tokenType: 'varchar',
    intType: 'integer',
    bigintType: 'bigint',
    isMissingTable: (error) => error instanceof Error && /no such table/i.test(error.message),
  }),
});
