import type { DataSource, QueryRunner } from 'typeorm';
import { postgresTransactionStatus } from '../../compat/typeorm-driver';
import { driverErrorOf } from '../../errors/driver-error-of';
import type { DriverErrorKind, InsertStatement, LockRow, SlotLockDialect, SqlStatement } from '../dialect';
import { portableTableMigration, type PortableColumnTypes } from '../portable-schema';
import { postgresAutocommitQuery } from './direct-query';
import { firstFreeSlotSql } from '../first-free-slot';
import { keptStatementText } from '../statement-text';
import { boundParameterSizing, quotedSql, quoteTable } from '../quoted-sql';
import { sessionSql } from '../session-sql';
import { PostgresReleaseListener, RELEASE_CHANNEL, WAITERS_LOCK_KEY, WAITERS_LOCK_SLOTS } from './release-listener';

/** PostgreSQL SQLSTATEs the service reacts to. */
export const POSTGRES_ERRORS = Object.freeze({
  /** unique_violation: only in a race, when a holder committed after the insert's snapshot. */
  uniqueViolation: '23505',
  /** deadlock_detected. */
  deadlock: '40P01',
  /** serialization_failure (SERIALIZABLE or REPEATABLE READ callers). */
  serializationFailure: '40001',
  /** lock_not_available: `lock_timeout` ran out. */
  lockNotAvailable: '55P03',
  /** in_failed_sql_transaction: a statement failed earlier in the transaction, which can only roll back. */
  inFailedTransaction: '25P02',
  /** undefined_table: the session table's migration has not run. */
  undefinedTable: '42P01',
});

/** `lockIndex` collates as "C": byte order and byte equality, case-sensitive. */
export const POSTGRES_COLUMN_TYPES: PortableColumnTypes = {
  id: 'int',
  ownerPHID: { type: 'varchar', length: 64 },
  lockIndex: { type: 'varchar', length: 12, collation: 'C' },
  lockKey: 'text',
};

const sql = quotedSql((n) => `$${n}`);

const insertText = keptStatementText((table, count) => {
  const values = new Array<string>(count);
  const indexes = new Array<string>(count);
  for (let i = 0; i < count; i += 1) {
    values[i] = `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`;
    indexes[i] = `$${3 * i + 2}`;
  }
  const quoted = sql.quoteTable(table);
  return (
    `INSERT INTO ${quoted} ("ownerPHID", "lockIndex", "lockKey") ` +
    `SELECT v.o, v.i, v.k FROM (VALUES ${values.join(', ')}) AS v(o, i, k) ` +
    `WHERE NOT EXISTS (SELECT 1 FROM ${quoted} WHERE "lockIndex" IN (${indexes.join(', ')}))`
  );
});

/**
 * A release wakes the waiters of every process at once (SPEC 10), when there are any (a
 * listener holds the advisory lock the release cannot get: see {@link WAITERS_LOCK_KEY}).
 * The check is an uncorrelated subquery, run once per statement; PostgreSQL delivers one
 * notification per transaction, at its commit, however many rows sent it. Nothing is
 * sent when nothing was deleted, and the statement still counts the rows it deleted.
 */
const deleteAndNotifyText = keptStatementText(
  (table) =>
    `DELETE FROM ${sql.quoteTable(table)} WHERE "ownerPHID" = $1 RETURNING CASE WHEN ` +
    `(SELECT pg_try_advisory_xact_lock(${WAITERS_LOCK_KEY}, (random() * ${WAITERS_LOCK_SLOTS - 1})::int)) ` +
    `THEN NULL ELSE pg_notify('${RELEASE_CHANNEL}', '') END`,
);

/**
 * PostgreSQL: the same columns, names and indexes as Phorge's table.
 *
 * A failed statement aborts a PostgreSQL transaction, and every duplicate key is an
 * ERROR line in the server log. So the INSERT carries its own check
 * (`… WHERE NOT EXISTS (held)`) and reports a held lock by inserting no row; only a
 * holder that commits between the check and the insert still raises 23505. In a
 * caller's transaction the service wraps it in a savepoint, so the caller's
 * transaction stays usable whatever happens.
 */
export const postgresDialect: SlotLockDialect = Object.freeze({
  dataSourceTypes: Object.freeze(['postgres']),
  abortsTransactionOnError: true,
  // text refuses U+0000 (22021).
  storesNul: false,
  singleConnection: false,
  // 65,535 bound parameters at most, three a row; smaller keeps planning cheap.
  maxRowsPerStatement: 10_000,

  quoteTable: sql.quoteTable,

  tableOf(dataSource: DataSource, table: string): string {
    const schema = (dataSource.options as { schema?: string }).schema;
    if (schema === undefined || table.includes('.')) return table;
    // Quoted when the SQL is written; the same characters as the tableName option allows.
    if (!/^[\p{L}\p{N}_$-]{1,63}$/u.test(schema)) {
      throw new TypeError(
        `dataSource: schema ${JSON.stringify(schema)} is not supported by drydock-slotlock (letters, digits, _, $ ` +
          'and - only): give the lock table another schema with the tableName option, e.g. "locks.drydock_slotlock"',
      );
    }
    return `${schema}.${table}`;
  },

  ...portableTableMigration(POSTGRES_COLUMN_TYPES),

  insertLocks(
    table: string,
    ownerPHID: string,
    rows: readonly LockRow[],
    start = 0,
    end = rows.length,
  ): InsertStatement {
    const count = end - start;
    const params = new Array<unknown>(3 * count);
    for (let i = 0; i < count; i += 1) {
      const row = rows[start + i]!;
      params[3 * i] = ownerPHID;
      params[3 * i + 1] = row.lockIndex;
      params[3 * i + 2] = row.lockKey;
    }
    return { sql: insertText(table, count), params, rowCount: count };
  },

  insertFirstFree(table: string, ownerPHID: string, candidates: readonly LockRow[]): SqlStatement {
    const params: unknown[] = [ownerPHID];
    const values = candidates.map((row, i) => {
      params.push(row.lockIndex, row.lockKey);
      return `($${2 * i + 2}::text, $${2 * i + 3}::text, ${i})`;
    });
    const quoted = sql.quoteTable(table);
    // ON CONFLICT DO NOTHING: a candidate taken since the NOT EXISTS read counts as lost, not as an error.
    return {
      sql:
        `WITH free AS (SELECT c.i, c.k, c.o FROM (VALUES ${values.join(', ')}) AS c(i, k, o) ` +
        `WHERE NOT EXISTS (SELECT 1 FROM ${quoted} h WHERE h."lockIndex" = c.i)), ` +
        `taken AS (INSERT INTO ${quoted} ("ownerPHID", "lockIndex", "lockKey") ` +
        `SELECT $1, free.i, free.k FROM free ORDER BY free.o LIMIT 1 ` +
        `ON CONFLICT ("lockIndex") DO NOTHING RETURNING "lockKey") ` +
        `SELECT (SELECT "lockKey" FROM taken) AS taken, (SELECT COUNT(*) FROM free)::int AS free`,
      params,
    };
  },

  selectFirstFreeSlot(table: string, prefix: string, limit: number, start: number): SqlStatement {
    // Lengths counted by the server, in its own characters (bytes in a SQL_ASCII database).
    return {
      sql: firstFreeSlotSql(
        sql.quoteTable(table),
        `substr("lockKey", char_length($3::text) + 1, char_length("lockKey") - char_length($3::text) - 1)`,
        `left("lockKey", char_length($3::text)) = $3::text AND right("lockKey", 1) = ')'`,
        `m ~ '^(0|[1-9][0-9]{0,15})$'`,
        'm::bigint',
        '$1::bigint',
        '$2::bigint',
      ),
      params: [start, limit, prefix],
    };
  },

  selectByIndexes: sql.selectByIndexes,
  selectByOwner: sql.selectByOwner,
  deleteByOwner(table: string, ownerPHID: string): SqlStatement {
    return { sql: deleteAndNotifyText(table, 1), params: [ownerPHID] };
  },
  deleteOwnedIndexes: sql.deleteOwnedIndexes,

  classify(error: unknown): DriverErrorKind {
    const code = driverErrorOf(error)?.code;
    if (code === POSTGRES_ERRORS.uniqueViolation) return 'conflict';
    if (
      code === POSTGRES_ERRORS.deadlock ||
      code === POSTGRES_ERRORS.serializationFailure ||
      code === POSTGRES_ERRORS.lockNotAvailable
    ) {
      return 'contention';
    }
    return 'other';
  },

  endsTransaction(): boolean {
    // An error aborts the transaction, but PostgreSQL then refuses every later statement (25P02).
    return false;
  },

  async transactionIsOpen(runner: QueryRunner): Promise<boolean> {
    const status = await postgresTransactionStatus(runner);
    if (status !== undefined) return status === 'T';
    try {
      await runner.query('SELECT 1');
      return true;
    } catch (error) {
      // 25P02 in_failed_sql_transaction: "commands ignored until end of transaction block".
      if (driverErrorOf(error)?.code === POSTGRES_ERRORS.inFailedTransaction) return false;
      throw error;
    }
  },

  async rollsBackTransaction(): Promise<boolean> {
    // The service's savepoint takes the blow: rolling back to it revives the caller's transaction.
    return false;
  },

  ...boundParameterSizing,

  autocommitQuery: postgresAutocommitQuery,

  sessions: sessionSql({
    quoteTable,
    quoteColumn: (column) => `"${column}"`,
    placeholder: (n) => `$${n}`,
    // clock_timestamp(), not now(): now() stands still for a whole transaction.
    nowMs: '(extract(epoch from clock_timestamp()) * 1000)::bigint',
    owner: (ownerPHID) => ownerPHID,
    ownerType: 'varchar',
    tokenType: 'varchar',
    intType: 'integer',
    bigintType: 'bigint',
    isMissingTable: (error) => driverErrorOf(error)?.code === POSTGRES_ERRORS.undefinedTable,
  }),

  releaseWakeups: (dataSource: DataSource) => PostgresReleaseListener.of(dataSource),
});
