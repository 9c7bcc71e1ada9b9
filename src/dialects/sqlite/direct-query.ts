import type { DataSource } from 'typeorm';
import { asQueryFailed, canSkipQueryRunner, type AutocommitQuery } from '../direct-query';

/** The slice of a better-sqlite3 Database this path uses. */
interface SqliteDatabase {
  prepare(sql: string): { run(...params: unknown[]): { changes: number } };
}

type PreparedStatement = ReturnType<SqliteDatabase['prepare']>;

/** Prepared statements per connection: the same few statements run over and over. */
const prepared = new WeakMap<SqliteDatabase, Map<string, PreparedStatement>>();

/**
 * One statement straight on TypeORM's better-sqlite3 connection, with the statement
 * prepared once. better-sqlite3 answers synchronously, so the query runner's promises
 * are most of the cost of a lock cycle on SQLite.
 */
export function sqliteAutocommitQuery(dataSource: DataSource): AutocommitQuery | undefined {
  if (!canSkipQueryRunner(dataSource)) return undefined;
  const driver = dataSource.driver as { databaseConnection?: SqliteDatabase };
  return async (statement) => {
    // Read at each call: the connection changes if the DataSource is destroyed and initialized again.
    const connection = driver.databaseConnection;
    if (connection === undefined) throw new Error('the SQLite DataSource is not initialized');
    let statements = prepared.get(connection);
    if (statements === undefined) prepared.set(connection, (statements = new Map()));
    const params = [...statement.params];
    try {
      let compiled = statements.get(statement.sql);
      if (compiled === undefined) statements.set(statement.sql, (compiled = connection.prepare(statement.sql)));
      return compiled.run(...params).changes;
    } catch (error) {
      throw asQueryFailed(statement, params, error);
    }
  };
}
