import { QueryFailedError, type DataSource } from 'typeorm';
import type { SqlStatement } from './dialect';

/** Runs one statement in autocommit and resolves to the rows it changed. */
export type AutocommitQuery = (statement: SqlStatement) => Promise<number>;

/** The slice of mysql2's callback pool this path uses. */
interface Mysql2CallbackPool {
  query(
    sql: string,
    values: unknown[],
    callback: (error: (Error & { sqlState?: string }) | null, result: { affectedRows?: number }) => void,
  ): void;
}

/**
 * One autocommit statement straight on TypeORM's own mysql2 pool, with the callback
 * API: measured at C=1 this is what brings an acquire+release cycle from about 0.95x
 * to 1.2x-1.3x raw mysql2 sending BEGIN/INSERT/COMMIT, because TypeORM's query runner
 * (subscriber and logger hooks, result wrapping, mysql2's per-query promise wrapper)
 * costs more CPU than the two round trips the autocommit saves.
 *
 * Only used where nothing is lost by skipping the query runner: TypeORM query logging
 * off, no subscribers, no query time limit, and one pool (not a replication cluster).
 * Otherwise resolves to `undefined` and the service uses a query runner as usual.
 */
export function mysqlAutocommitQuery(dataSource: DataSource): AutocommitQuery | undefined {
  const options = dataSource.options as { logging?: unknown; maxQueryExecutionTime?: number; replication?: unknown };
  const pool = (dataSource.driver as { pool?: Mysql2CallbackPool }).pool;
  if (
    pool === undefined ||
    typeof pool.query !== 'function' ||
    options.replication !== undefined ||
    (options.logging !== undefined && options.logging !== false) ||
    options.maxQueryExecutionTime !== undefined ||
    dataSource.subscribers.length > 0
  ) {
    return undefined;
  }
  return (statement) =>
    new Promise<number>((resolve, reject) => {
      const params = [...statement.params];
      pool.query(statement.sql, params, (error, result) => {
        if (error === null) {
          resolve(result.affectedRows ?? 0);
        } else if (error.sqlState !== undefined) {
          // A server's answer: wrapped as TypeORM's runner would, so callers see one error type.
          reject(new QueryFailedError(statement.sql, params, error));
        } else {
          reject(error);
        }
      });
    });
}
