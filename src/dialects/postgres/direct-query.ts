import type { DataSource } from 'typeorm';
import { asQueryFailed, canSkipQueryRunner, type AutocommitQuery } from '../direct-query';

/** The slice of pg's Pool this path uses. */
interface PgPool {
  query(sql: string, values: unknown[]): Promise<{ rowCount: number | null }>;
}

/**
 * One autocommit statement straight on TypeORM's own `pg` pool (`driver.master`),
 * skipping the query runner's hooks and its connect/release round of promises.
 */
export function postgresAutocommitQuery(dataSource: DataSource): AutocommitQuery | undefined {
  const driver = dataSource.driver as { master?: PgPool };
  if (typeof driver.master?.query !== 'function' || !canSkipQueryRunner(dataSource)) return undefined;
  return async (statement) => {
    const params = [...statement.params];
    // Read at each call: a DataSource destroyed and initialized again has a new pool.
    const pool = driver.master;
    if (pool === undefined) throw new Error('the PostgreSQL DataSource is not initialized');
    try {
      return (await pool.query(statement.sql, params)).rowCount ?? 0;
    } catch (error) {
      // pg's DatabaseError carries the server's severity; a connection failure does not.
      throw (error as { severity?: string }).severity !== undefined ? asQueryFailed(statement, params, error) : error;
    }
  };
}
