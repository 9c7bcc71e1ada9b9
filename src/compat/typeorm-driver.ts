import type { DataSource, QueryRunner } from 'typeorm';

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
  client: { query(sql: string, values: unknown[]): Promise<{ rowCount: number | null }> },
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
