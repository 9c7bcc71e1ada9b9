import type { QueryRunner } from 'typeorm';
import type { DriverErrorKind, InsertStatement, LockRow, Queryable, SlotLockDialect, SqlStatement } from '../dialect';
import { driverErrorOf } from '../../errors/driver-error-of';
import { firstFreeSlotSql } from '../first-free-slot';
import { keptStatementText } from '../statement-text';
import { mysqlAutocommitQuery } from './direct-query';
import { sessionSql } from '../session-sql';

/** Phorge's table name (in the `{$NAMESPACE}_drydock` database). */
export const PHORGE_TABLE_NAME = 'drydock_slotlock';

/** MySQL and MariaDB error numbers the service reacts to. */
export const MYSQL_ERRORS = Object.freeze({
  /** ER_DUP_ENTRY: the unique index `key_lock` refused a row, so a lock is held. */
  duplicateEntry: 1062,
  /** ER_LOCK_WAIT_TIMEOUT: waited `innodb_lock_wait_timeout` seconds for a row lock. */
  lockWaitTimeout: 1205,
  /** ER_LOCK_DEADLOCK: deadlock, or a Galera certification failure (often at COMMIT). */
  deadlock: 1213,
  /** ER_NO_SUCH_TABLE: the session table's migration has not run. */
  noSuchTable: 1146,
});

function quoteIdentifier(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}

/**
 * Phorge's DDL, copied from `resources/sql/autopatches/20150916.drydock.slotlocks.1.sql`
 * with `{$COLLATE_TEXT}` = `utf8mb4_bin`: kept as Phorge writes it, so SHOW CREATE TABLE
 * comes out identical (SPEC 2.2).
 */
export function phorgeCreateTableSql(table: string): string {
  return (
    `CREATE TABLE ${quoteTable(table)} (\n` +
    '  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n' +
    '  ownerPHID VARBINARY(64) NOT NULL,\n' +
    '  lockIndex BINARY(12) NOT NULL,\n' +
    '  lockKey LONGTEXT NOT NULL COLLATE utf8mb4_bin,\n' +
    '  UNIQUE KEY `key_lock` (lockIndex),\n' +
    '  KEY `key_owner` (ownerPHID)\n' +
    ') ENGINE=InnoDB, COLLATE utf8mb4_bin'
  );
}

function placeholders(count: number, group: string): string {
  return new Array<string>(count).fill(group).join(', ');
}

/**
 * Owners and keys travel as UTF-8 `Buffer`s, which mysql2 writes into the SQL text as
 * hex literals (`X'…'`). mysql2 builds the statement on the client and escapes strings
 * with backslashes whatever the session's `sql_mode`: under `NO_BACKSLASH_ESCAPES` an
 * escaped string can end early and the rest of a key becomes SQL. A hex literal has
 * no quote to break out of, and its bytes reach the column as they are, whatever the
 * connection's charset (`latin1` would turn `★` into `?`, `utf8mb3` an emoji into
 * six bytes of CESU-8). The lock index is ASCII from a 64-letter alphabet: safe as text.
 */
function bytes(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

/**
 * The columns as they are stored: `lockKey` read as binary, so that the connection's
 * charset cannot transcode it on the way back (`ownerPHID` and `lockIndex` are binary already).
 */
const STORED_COLUMNS = 'id, ownerPHID, lockIndex, CAST(lockKey AS BINARY) AS lockKey';

/**
 * `DELETE t FROM t FORCE INDEX (index)`: a DELETE that reads the table through `index`
 * whatever the optimizer thinks of it. A plain `DELETE FROM t WHERE ownerPHID = ?` is a
 * full table scan whenever the statistics make the owner's range look big next to the
 * table: few locks held, and the owner's delete-marked index records that purge has not
 * removed yet (an owner that re-takes its keys) counted in its range. Measured on MariaDB
 * 10.11 with 8 callers re-taking 10 or 100 keys, that was the plan nearly all the time;
 * under REPEATABLE READ the scan locks every row it passes, other owners' fresh rows
 * included, and deadlocks with their INSERTs. Through the index, the package's retried
 * deadlocks per 1,000 acquire+release cycles went from 1.0-4.6 to 0.1-0.4 (K=10) and from
 * 12-42 to 1.2-9 (K=100), at 8 callers, and those cycles ran 20-40 % faster (a lone caller
 * on a nearly empty table: 4 % slower). Index hints belong to the multi-table DELETE
 * syntax in MySQL and MariaDB alike (a single-table DELETE takes none); the index names
 * are Phorge's (SPEC 2.1).
 */
function deleteThroughIndex(table: string, index: 'key_owner' | 'key_lock'): string {
  const name = quoteTable(table);
  return `DELETE ${name} FROM ${name} FORCE INDEX (${quoteIdentifier(index)})`;
}

const insertText = keptStatementText(
  (table, rows) =>
    `INSERT INTO ${quoteTable(table)} (ownerPHID, lockIndex, lockKey) VALUES ` + placeholders(rows, '(?, ?, ?)'),
);

const deleteByOwnerText = keptStatementText((table) => `${deleteThroughIndex(table, 'key_owner')} WHERE ownerPHID = ?`);

/**
 * MariaDB and MySQL: Phorge's own table, its DDL copied from
 * `resources/sql/autopatches/20150916.drydock.slotlocks.1.sql` with
 * `{$COLLATE_TEXT}` = `utf8mb4_bin`.
 */
export const mysqlDialect: SlotLockDialect = Object.freeze({
  dataSourceTypes: Object.freeze(['mysql', 'mariadb']),
  // A failed statement leaves a MySQL transaction usable (except a deadlock, see rollsBackTransaction).
  abortsTransactionOnError: false,
  // mysql2 interpolates parameters client-side: no limit on rows, only on bytes (the
  // server's packet size, and the service's memory bound: see LockTable.planInserts).
  maxRowsPerStatement: Number.MAX_SAFE_INTEGER,

  // LONGTEXT and VARBINARY store any byte.
  storesNul: true,
  singleConnection: false,

  quoteTable,

  tableOf(_dataSource: unknown, table: string): string {
    return table;
  },

  async createTable(runner: QueryRunner, table: string): Promise<void> {
    await runner.query(phorgeCreateTableSql(table));
  },

  async dropTable(runner: QueryRunner, table: string): Promise<void> {
    await runner.query(`DROP TABLE ${quoteTable(table)}`);
  },

  insertLocks(
    table: string,
    ownerPHID: string,
    rows: readonly LockRow[],
    start = 0,
    end = rows.length,
  ): InsertStatement {
    // One Buffer of the owner for every row: mysql2 writes each occurrence out in full.
    const owner = bytes(ownerPHID);
    const params = new Array<unknown>(3 * (end - start));
    for (let i = start, p = 0; i < end; i += 1, p += 3) {
      const row = rows[i]!;
      params[p] = owner;
      params[p + 1] = row.lockIndex;
      params[p + 2] = bytes(row.lockKey);
    }
    return { sql: insertText(table, end - start), params, rowCount: end - start };
  },

  selectFirstFreeSlot(table: string, prefix: string, limit: number, start: number): SqlStatement {
    // Compared as bytes, whatever the connection's charset: the prefix travels as a hex literal.
    const key = 'CAST(lockKey AS BINARY)';
    const bytesOfPrefix = Buffer.byteLength(prefix);
    return {
      sql: firstFreeSlotSql(
        quoteTable(table),
        `SUBSTRING(${key}, ? + 1, LENGTH(${key}) - ? - 1)`,
        `LEFT(${key}, ?) = ? AND RIGHT(${key}, 1) = ')'`,
        // The regex's $ also matches before a final newline: "7\n" is not slot 7.
        `m REGEXP '^(0|[1-9][0-9]{0,15})$' AND INSTR(m, CHAR(10)) = 0`,
        'CAST(m AS UNSIGNED)',
        'CAST(? AS SIGNED)',
        'CAST(? AS SIGNED)',
      ),
      params: [start, limit, bytesOfPrefix, bytesOfPrefix, bytesOfPrefix, bytes(prefix)],
    };
  },

  selectByIndexes(table: string, indexes: readonly string[]): SqlStatement {
    return {
      sql:
        `SELECT ${STORED_COLUMNS} FROM ${quoteTable(table)} ` +
        `WHERE lockIndex IN (${placeholders(indexes.length, '?')})`,
      params: indexes,
    };
  },

  selectByOwner(table: string, ownerPHID: string): SqlStatement {
    return {
      sql: `SELECT ${STORED_COLUMNS} FROM ${quoteTable(table)} WHERE ownerPHID = ? ORDER BY id`,
      params: [bytes(ownerPHID)],
    };
  },

  deleteOwnedIndexes(table: string, ownerPHID: string, indexes: readonly string[]): SqlStatement {
    // Through the unique index: only these rows are locked (see deleteThroughIndex).
    return {
      sql: `${deleteThroughIndex(table, 'key_lock')} WHERE ownerPHID = ? AND lockIndex IN (${placeholders(indexes.length, '?')})`,
      params: [bytes(ownerPHID), ...indexes],
    };
  },

  deleteByOwner(table: string, ownerPHID: string): SqlStatement {
    return { sql: deleteByOwnerText(table, 1), params: [bytes(ownerPHID)] };
  },

  classify(error: unknown): DriverErrorKind {
    const errno = driverErrorOf(error)?.errno;
    if (errno === MYSQL_ERRORS.duplicateEntry) return 'conflict';
    if (errno === MYSQL_ERRORS.deadlock || errno === MYSQL_ERRORS.lockWaitTimeout) return 'contention';
    return 'other';
  },

  endsTransaction(error: unknown): boolean {
    return driverErrorOf(error)?.errno === MYSQL_ERRORS.deadlock;
  },

  async transactionIsOpen(runner: QueryRunner): Promise<boolean> {
    // After a deadlock the server has rolled back and the session runs in autocommit again.
    const rows = (await runner.query('SELECT @@in_transaction AS open')) as Array<{ open: unknown }>;
    return Number(rows[0]?.open) === 1;
  },

  async rollsBackTransaction(error: unknown, runner: QueryRunner): Promise<boolean> {
    const errno = driverErrorOf(error)?.errno;
    if (errno === MYSQL_ERRORS.deadlock) return true;
    if (errno !== MYSQL_ERRORS.lockWaitTimeout) return false;
    // A lock-wait timeout rolls back only the statement unless the server runs with
    // innodb_rollback_on_timeout, which rolls back the whole transaction.
    const rows = (await runner.query('SELECT @@innodb_rollback_on_timeout AS v')) as Array<{ v: unknown }>;
    return Number(rows[0]?.v) === 1;
  },

  async readMaxStatementBytes(db: Queryable): Promise<number> {
    const rows = (await db.query('SELECT @@max_allowed_packet AS v')) as Array<{ v: unknown }>;
    return Number(rows[0]?.v);
  },

  autocommitQuery: mysqlAutocommitQuery,

  slotScanIsolation: 'READ COMMITTED',

  sessions: sessionSql({
    quoteTable,
    quoteColumn: quoteIdentifier,
    placeholder: () => '?',
    // UTC_TIMESTAMP, not NOW(): the session's time_zone (and its DST) cannot move it.
    nowMs: "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)",
    owner: bytes,
    ownerType: 'varbinary',
    tokenType: 'varchar',
    intType: 'int',
    bigintType: 'bigint',
    isMissingTable: (error) => driverErrorOf(error)?.errno === MYSQL_ERRORS.noSuchTable,
  }),

  rowBytes(ownerBytes: number, row: LockRow): number {
    // mysql2 writes parameters into the SQL text: a Buffer as a hex literal, two letters
    // a byte, so count every byte twice, plus X'', commas and parentheses of "(?, ?, ?), ".
    return 2 * (ownerBytes + row.lockIndex.length + Buffer.byteLength(row.lockKey)) + 16;
  },
});
