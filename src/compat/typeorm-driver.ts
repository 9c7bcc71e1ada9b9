import { QueryFailedError, type DataSource, type QueryRunner } from 'typeorm';

/**
 * The parts of TypeORM's drivers the package reaches past the query runner, named in
 * this one file. TypeORM 0.3.20+ and 1.x expose them alike; a future release that
 * renames one breaks here, not all over the package.
 */

/** A pooled mysql2 connection (callback API), as `MysqlDriver.obtainMasterConnection()` hands it out. */
export interface MysqlPooledConnection {
  query(
    sql: string,
    values: unknown[],
    callback: (error: Error | null, result: { affectedRows?: number }) => void,
  ): void;
  release(): void;
}

/** A pooled `pg` client and the function that gives it back, as `PostgresDriver.obtainMasterConnection()` resolves. */
export type PostgresPooledClient = [
  client: {
    query(sql: string, values: unknown[]): Promise<{ rowCount: number | null }>;
    on(event: 'error', listener: (error: Error) => void): unknown;
    removeListener(event: 'error', listener: (error: Error) => void): unknown;
  },
  release: (error?: Error) => void,
];

/** The slice of a better-sqlite3 `Database` the package uses. */
export interface SqliteDatabase {
  readonly name: string;
  readonly memory: boolean;
  readonly open: boolean;
  readonly inTransaction: boolean;
  prepare(sql: string): SqliteStatement;
  pragma(source: string, options?: { simple?: boolean }): unknown;
}

/** The slice of a better-sqlite3 prepared statement the package uses. */
export interface SqliteStatement {
  run(...params: unknown[]): { changes: number };
}

/**
 * A pooled connection of a MySQL or MariaDB DataSource, checked out the way TypeORM's
 * query runner does it (the master of a replicated setup; its errors handled).
 */
export function obtainMysqlConnection(dataSource: DataSource): Promise<MysqlPooledConnection> {
  return (
    dataSource.driver as unknown as { obtainMasterConnection(): Promise<MysqlPooledConnection> }
  ).obtainMasterConnection();
}

/** A pooled client of a PostgreSQL DataSource, checked out the way TypeORM's query runner does it. */
export function obtainPostgresClient(dataSource: DataSource): Promise<PostgresPooledClient> {
  return (
    dataSource.driver as unknown as { obtainMasterConnection(): Promise<PostgresPooledClient> }
  ).obtainMasterConnection();
}

/** The one better-sqlite3 connection of a SQLite DataSource; undefined before `initialize()` and after `destroy()`. */
export function sqliteConnectionOf(dataSource: DataSource): SqliteDatabase | undefined {
  return (dataSource.driver as unknown as { databaseConnection?: SqliteDatabase }).databaseConnection;
}

/** The query runner every caller of a SQLite DataSource shares (TypeORM gives it one connection). */
export function sqliteSharedRunnerOf(dataSource: DataSource): QueryRunner | undefined {
  return (dataSource.driver as unknown as { queryRunner?: QueryRunner }).queryRunner;
}

/** Anything that runs SQL through TypeORM: a DataSource or a QueryRunner. */
interface RunsQueries {
  query(sql: string, parameters?: unknown[]): Promise<unknown>;
}

/**
 * Runs a statement through TypeORM (a DataSource or a query runner) and makes its
 * failure TypeORM's `QueryFailedError` on every supported version: TypeORM 0.3 and 1.0
 * prepare a SQLite statement outside their `try`, so a statement SQLite cannot prepare
 * (a missing table) leaves them as better-sqlite3's bare `SqliteError`; 1.1 wraps it.
 */
export function queryThroughTypeorm(db: RunsQueries, sql: string, params: unknown[]): Promise<unknown> {
  return asQueryFailed(sql, params, () => db.query(sql, params));
}

/** {@link queryThroughTypeorm} for a statement that changes rows: resolves to how many. */
export async function changeThroughTypeorm(runner: QueryRunner, sql: string, params: unknown[]): Promise<number> {
  const result = (await asQueryFailed(sql, params, () => runner.query(sql, params, true))) as { affected?: number };
  return result.affected ?? 0;
}

async function asQueryFailed<T>(sql: string, params: unknown[], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (!(error instanceof QueryFailedError) && typeof code === 'string' && code.startsWith('SQLITE_')) {
      throw new QueryFailedError(sql, params, error as Error);
    }
    throw error;
  }
}

/**
 * The transaction status of the `pg` client under a query runner, as the server last
 * reported it: `'I'` idle, `'T'` in a transaction, `'E'` in a failed transaction (which
 * can only roll back). Undefined when it cannot be trusted: while a statement's answer
 * is still being read (pg hands a failed statement's error to its caller before the
 * server's "ready" message that carries the new status, so the status read then lags
 * behind), or with a `pg` older than `getTransactionStatus()`.
 */
export async function postgresTransactionStatus(runner: QueryRunner): Promise<'I' | 'T' | 'E' | undefined> {
  const client = (await runner.connect()) as { getTransactionStatus?: () => string | null; readyForQuery?: boolean };
  if (typeof client.getTransactionStatus !== 'function' || client.readyForQuery !== true) return undefined;
  const status = client.getTransactionStatus();
  return status === 'I' || status === 'T' || status === 'E' ? status : undefined;
}

/** A `pg` client of its own for a PostgreSQL DataSource, configured as its pool's clients are; not connected yet. */
export interface PostgresListeningClient {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'notification', listener: (message: { channel: string }) => void): void;
  on(event: 'error' | 'end', listener: (error?: Error) => void): void;
  /** pg's connection, whose socket is unref'd so that listening never keeps the process alive. */
  readonly connection?: { readonly stream?: { unref?: () => void } };
}

export function newPostgresClient(dataSource: DataSource): PostgresListeningClient {
  const driver = dataSource.driver as unknown as {
    postgres: { Client: new (options: unknown) => PostgresListeningClient };
    master: { options: unknown };
  };
  return new driver.postgres.Client(driver.master.options);
}
