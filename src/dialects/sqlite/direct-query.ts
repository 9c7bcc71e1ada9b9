import type { DataSource } from 'typeorm';
import { sqliteConnectionOf, type SqliteDatabase, type SqliteStatement } from '../../compat/typeorm-driver';
import type { SqlStatement } from '../dialect';
import { logQueryDone, logQueryStart, queryFailed, type AutocommitQuery } from '../direct-query';

/** Prepared statements per connection: the same few statements run over and over. */
const prepared = new WeakMap<SqliteDatabase, Map<string, SqliteStatement>>();

/**
 * Distinct statements kept per connection. A lock cycle uses a handful (one INSERT per
 * set size, the DELETE); an app whose set sizes vary widely would otherwise keep one per
 * size for good. When full, the cache starts over.
 */
const MAX_PREPARED = 128;

/**
 * One statement straight on a DataSource's better-sqlite3 connection, prepared once and
 * logged as TypeORM's query runner would; synchronous, as better-sqlite3 is. Resolves
 * nothing: returns the rows changed, or throws `QueryFailedError`.
 */
export function sqliteAutocommitNow(dataSource: DataSource, statement: SqlStatement): number {
  // Read at each call: the connection changes if the DataSource is destroyed and initialized again.
  const connection = sqliteConnectionOf(dataSource);
  if (connection === undefined) throw new Error('the SQLite DataSource is not initialized');
  let statements = prepared.get(connection);
  if (statements === undefined) prepared.set(connection, (statements = new Map()));
  const params = statement.params as unknown[];
  const startedAt = logQueryStart(dataSource, statement.sql, params);
  try {
    let compiled = statements.get(statement.sql);
    if (compiled === undefined) {
      if (statements.size >= MAX_PREPARED) statements.clear();
      statements.set(statement.sql, (compiled = connection.prepare(statement.sql)));
    }
    const changes = compiled.run(...params).changes;
    logQueryDone(dataSource, statement.sql, params, startedAt);
    return changes;
  } catch (error) {
    throw queryFailed(dataSource, statement.sql, params, error, startedAt);
  }
}

/**
 * {@link sqliteAutocommitNow} as a promise, for the paths that queue their units.
 * better-sqlite3 answers synchronously, so the promises around a statement are most of
 * the cost of a lock cycle on SQLite.
 */
export const sqliteAutocommitQuery: AutocommitQuery = async (dataSource, statement) =>
  sqliteAutocommitNow(dataSource, statement);
