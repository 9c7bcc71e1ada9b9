import { QueryFailedError, type DataSource } from 'typeorm';
import type { SqlStatement } from './dialect';

/** Runs one statement in autocommit on a DataSource and resolves to the rows it changed. */
export type AutocommitQuery = (dataSource: DataSource, statement: SqlStatement) => Promise<number>;

/**
 * True when a statement can skip TypeORM's query runner without anyone noticing. The
 * direct paths log through the DataSource's logger and throw `QueryFailedError` as
 * the runner does; what they cannot do is tell subscribers (`beforeQuery`/`afterQuery`)
 * or have the driver enforce `enableQueryTimeout`, so those send statements through a
 * runner. Read at each call: it is a few property reads, and `setOptions` may change them.
 *
 * Why skip at all: the runner's hooks and result wrapping cost more CPU per lock cycle
 * than the database work itself on a fast server (measured: 0.86x-0.95x the raw drivers).
 */
export function canSkipQueryRunner(dataSource: DataSource): boolean {
  const options = dataSource.options as { maxQueryExecutionTime?: number; enableQueryTimeout?: boolean };
  return dataSource.subscribers.length === 0 && !(options.enableQueryTimeout === true && options.maxQueryExecutionTime);
}

/**
 * What a query runner does around a statement, for the paths that skip it: the
 * DataSource's logger sees the statement before it runs ({@link logQueryStart}), a
 * slow one after ({@link logQueryDone}), and a failure as `QueryFailedError`
 * ({@link queryFailed}). Returns the start time.
 */
export function logQueryStart(dataSource: DataSource, sql: string, params: unknown[]): number {
  dataSource.logger.logQuery(sql, params);
  return Date.now();
}

/** Logs a slow statement as the runner would (`maxQueryExecutionTime`). */
export function logQueryDone(dataSource: DataSource, sql: string, params: unknown[], startedAt: number): void {
  const limit = dataSource.options.maxQueryExecutionTime;
  if (limit === undefined || limit <= 0) return;
  const elapsed = Date.now() - startedAt;
  if (elapsed > limit) dataSource.logger.logQuerySlow(elapsed, sql, params);
}

/**
 * The error a query runner would have thrown for a statement that failed once it was
 * sent (any error, the connection's included): TypeORM's own `QueryFailedError`, logged.
 */
export function queryFailed(
  dataSource: DataSource,
  sql: string,
  params: unknown[],
  error: unknown,
  startedAt: number,
): QueryFailedError {
  logQueryDone(dataSource, sql, params, startedAt);
  dataSource.logger.logQueryError(error as Error, sql, params);
  return new QueryFailedError(sql, params, error as Error);
}
