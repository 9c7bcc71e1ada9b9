import type { DataSource } from 'typeorm';
import { obtainPostgresClient } from '../../compat/typeorm-driver';
import { logQueryDone, logQueryStart, queryFailed, type AutocommitQuery } from '../direct-query';

/**
 * One autocommit statement on a pooled `pg` client, checked out and logged as TypeORM's
 * query runner would, without its hooks and result wrapping. A failure to check out a
 * client passes through as the runner lets it; anything after is a `QueryFailedError`.
 */
export const postgresAutocommitQuery: AutocommitQuery = async (dataSource: DataSource, statement) => {
  const [client, release] = await obtainPostgresClient(dataSource);
  const params = statement.params as unknown[];
  const startedAt = logQueryStart(dataSource, statement.sql, params);
  let result: { rowCount: number | null };
  try {
    result = await client.query(statement.sql, params);
  } catch (error) {
    // A client whose connection failed goes back marked, so the pool drops it.
    release(isConnectionFailure(error) ? (error as Error) : undefined);
    throw queryFailed(dataSource, statement.sql, params, error, startedAt);
  }
  release();
  logQueryDone(dataSource, statement.sql, params, startedAt);
  return result.rowCount ?? 0;
};

/** pg's server errors carry a severity; FATAL and PANIC end the session, and errors without one are the socket's. */
function isConnectionFailure(error: unknown): boolean {
  const severity = (error as { severity?: string }).severity;
  return severity === undefined || severity === 'FATAL' || severity === 'PANIC';
}
