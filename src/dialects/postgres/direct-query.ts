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
  // pg emits 'error' on a checked-out client whose connection drops, even with a query in
  // flight (which also fails): with no listener that would crash the process. TypeORM's
  // query runner listens the same way; the failed query carries the error to the caller.
  let connectionError: Error | undefined;
  const onConnectionError = (error: Error): void => {
    connectionError = error;
  };
  client.on('error', onConnectionError);
  const params = statement.params as unknown[];
  const startedAt = logQueryStart(dataSource, statement.sql, params);
  let result: { rowCount: number | null };
  try {
    result = await client.query(statement.sql, params);
  } catch (error) {
    client.removeListener('error', onConnectionError);
    // A client whose connection failed goes back marked, so the pool drops it.
    release(connectionError ?? (isConnectionFailure(error) ? (error as Error) : undefined));
    throw queryFailed(dataSource, statement.sql, params, error, startedAt);
  }
  client.removeListener('error', onConnectionError);
  release(connectionError);
  logQueryDone(dataSource, statement.sql, params, startedAt);
  return result.rowCount ?? 0;
};

/** pg's server errors carry a severity; FATAL and PANIC end the session, and errors without one are the socket's. */
function isConnectionFailure(error: unknown): boolean {
  const severity = (error as { severity?: string }).severity;
  return severity === undefined || severity === 'FATAL' || severity === 'PANIC';
}
