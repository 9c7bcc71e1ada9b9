import { keptStatementText } from './statement-text';
import type { LockRow, SqlStatement } from './dialect';

/**
 * The SQL that PostgreSQL and SQLite share: standard double-quoted identifiers (the
 * columns are mixed-case), differing only in how a bound parameter is written.
 */
export interface QuotedSql {
  quoteTable(table: string): string;
  selectByIndexes(table: string, indexes: readonly string[]): SqlStatement;
  selectByOwner(table: string, ownerPHID: string): SqlStatement;
  deleteByOwner(table: string, ownerPHID: string): SqlStatement;
  deleteOwnedIndexes(table: string, ownerPHID: string, indexes: readonly string[]): SqlStatement;
}

function quoteIdentifier(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/** Quotes a table name, `schema.table` included, with double quotes. */
export function quoteTable(table: string): string {
  return table.split('.').map(quoteIdentifier).join('.');
}

const COLUMNS = '"id", "ownerPHID", "lockIndex", "lockKey"';

/** The shared statements, with `placeholder(n)` writing the n-th (1-based) parameter. */
export function quotedSql(placeholder: (n: number) => string): QuotedSql {
  const deleteByOwnerText = keptStatementText(
    (table) => `DELETE FROM ${quoteTable(table)} WHERE "ownerPHID" = ${placeholder(1)}`,
  );
  return Object.freeze({
    quoteTable,
    selectByIndexes(table: string, indexes: readonly string[]): SqlStatement {
      const list = indexes.map((_, i) => placeholder(i + 1)).join(', ');
      return {
        sql: `SELECT ${COLUMNS} FROM ${quoteTable(table)} WHERE "lockIndex" IN (${list})`,
        params: indexes,
      };
    },
    selectByOwner(table: string, ownerPHID: string): SqlStatement {
      return {
        sql: `SELECT ${COLUMNS} FROM ${quoteTable(table)} WHERE "ownerPHID" = ${placeholder(1)} ORDER BY "id"`,
        params: [ownerPHID],
      };
    },
    deleteByOwner(table: string, ownerPHID: string): SqlStatement {
      return { sql: deleteByOwnerText(table, 1), params: [ownerPHID] };
    },
    deleteOwnedIndexes(table: string, ownerPHID: string, indexes: readonly string[]): SqlStatement {
      const list = indexes.map((_, i) => placeholder(i + 2)).join(', ');
      return {
        sql: `DELETE FROM ${quoteTable(table)} WHERE "ownerPHID" = ${placeholder(1)} AND "lockIndex" IN (${list})`,
        params: [ownerPHID, ...indexes],
      };
    },
  });
}

/**
 * Statement sizing where parameters travel apart from the SQL text (PostgreSQL,
 * SQLite): no packet limit worth reading from the server; rows per statement are what
 * the engine limits (`maxRowsPerStatement`), and bytes what the service's memory bound
 * does (see LockTable.planInserts).
 */
export const boundParameterSizing = Object.freeze({
  async readMaxStatementBytes(): Promise<number> {
    return 64 * 1024 * 1024;
  },
  rowBytes(ownerBytes: number, row: LockRow): number {
    return ownerBytes + row.lockIndex.length + Buffer.byteLength(row.lockKey) + 32;
  },
});
