import { createHash } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { CliError } from './cli-error';
import { driverErrorOf } from '../errors/driver-error-of';

/** How TypeORM must run migrations inside {@link migrateExclusively}: pass it to `runMigrations` or `undoLastMigration`. */
export interface MigrationRunOptions {
  /**
   * `'all'` on servers (each run in one transaction of TypeORM's); `'none'` on SQLite, where
   * the whole of `work` already runs in the transaction that serializes it.
   */
  readonly transaction: 'all' | 'none';
}

/** The name of the lock that serializes migrations (MySQL's GET_LOCK; PostgreSQL's advisory key is derived from it). */
export const MIGRATION_LOCK_NAME = 'drydock_slotlock.migrate';

/** How long a migration waits for another one to finish before giving up. */
export const MIGRATION_LOCK_TIMEOUT_SECONDS = 60;

/**
 * Runs `work` (migrations: `runMigrations`, `undoLastMigration`, one set or several) while no
 * other process migrates the same database, so that concurrent `slotlock migrate` runs queue
 * up instead of racing to create the same tables (TypeORM checks for a table, then creates
 * it: two runs can both see it missing). The lock:
 * - MySQL/MariaDB: `GET_LOCK` on a connection of its own, held while `work` runs on others
 *   (server-wide; on a Galera cluster it holds on one node only, so migrate through one node);
 * - PostgreSQL: a session advisory lock on a connection of its own (per database);
 * - SQLite: the database's write lock (`BEGIN IMMEDIATE`) on the DataSource's one
 *   connection, with `work` inside that transaction: it commits or rolls back as a whole.
 *
 * Waits at most `timeoutSeconds` for the lock, then fails with a {@link CliError}.
 */
export async function migrateExclusively<T>(
  dataSource: DataSource,
  work: (options: MigrationRunOptions) => Promise<T>,
  timeoutSeconds: number = MIGRATION_LOCK_TIMEOUT_SECONDS,
): Promise<T> {
  switch (dataSource.options.type) {
    case 'mysql':
    case 'mariadb':
      return withMysqlLock(dataSource, timeoutSeconds, work);
    case 'postgres':
      return withPostgresLock(dataSource, timeoutSeconds, work);
    case 'better-sqlite3':
      return withSqliteWriteLock(dataSource, timeoutSeconds, work);
    default:
      throw new CliError(`cannot serialize migrations on a ${dataSource.options.type} database`);
  }
}

function busy(timeoutSeconds: number): CliError {
  return new CliError(
    `another migration of this database has been running for over ${timeoutSeconds} s: ` +
      'wait for it to finish, then run `slotlock migrate` again',
  );
}

async function withMysqlLock<T>(
  dataSource: DataSource,
  timeoutSeconds: number,
  work: (options: MigrationRunOptions) => Promise<T>,
): Promise<T> {
  // A runner holds one pooled connection from its first query until release: the lock's session.
  const lockRunner = dataSource.createQueryRunner();
  try {
    const [row] = (await lockRunner.query('SELECT GET_LOCK(?, ?) AS acquired', [
      MIGRATION_LOCK_NAME,
      timeoutSeconds,
    ])) as Array<{ acquired: number | string | null }>;
    if (Number(row?.acquired) !== 1) throw busy(timeoutSeconds);
    try {
      return await work({ transaction: 'all' });
    } finally {
      await lockRunner.query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK_NAME]);
    }
  } finally {
    await lockRunner.release();
  }
}

/** PostgreSQL's advisory locks take a bigint: the first 8 bytes of the name's SHA-1, signed. */
export const POSTGRES_MIGRATION_LOCK_KEY = createHash('sha1')
  .update(MIGRATION_LOCK_NAME)
  .digest()
  .readBigInt64BE(0)
  .toString();

async function withPostgresLock<T>(
  dataSource: DataSource,
  timeoutSeconds: number,
  work: (options: MigrationRunOptions) => Promise<T>,
): Promise<T> {
  const lockRunner = dataSource.createQueryRunner();
  try {
    // lock_timeout bounds the wait for an advisory lock too (SQLSTATE 55P03 when it runs out).
    await lockRunner.query(`SELECT set_config('lock_timeout', $1, false)`, [`${timeoutSeconds * 1000}ms`]);
    try {
      await lockRunner.query('SELECT pg_advisory_lock($1::bigint)', [POSTGRES_MIGRATION_LOCK_KEY]);
    } catch (error) {
      if (driverErrorOf(error)?.code === '55P03') throw busy(timeoutSeconds);
      throw error;
    } finally {
      await lockRunner.query('RESET lock_timeout');
    }
    try {
      return await work({ transaction: 'all' });
    } finally {
      await lockRunner.query('SELECT pg_advisory_unlock($1::bigint)', [POSTGRES_MIGRATION_LOCK_KEY]);
    }
  } finally {
    await lockRunner.release();
  }
}

async function withSqliteWriteLock<T>(
  dataSource: DataSource,
  timeoutSeconds: number,
  work: (options: MigrationRunOptions) => Promise<T>,
): Promise<T> {
  // TypeORM gives a SQLite DataSource one connection and one shared runner: what `work`
  // runs through TypeORM runs inside this transaction. IMMEDIATE takes the write lock now,
  // so no other process reads "no migrations table" before this one has created it.
  const runner: QueryRunner = dataSource.createQueryRunner();
  await beginImmediate(runner, timeoutSeconds);
  let result: T;
  try {
    result = await work({ transaction: 'none' });
  } catch (error) {
    await runner.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
  await runner.query('COMMIT');
  return result;
}

/** `BEGIN IMMEDIATE`, tried again while another writer keeps the database busy beyond the busy timeout, until `timeoutSeconds`. */
async function beginImmediate(runner: QueryRunner, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    try {
      await runner.query('BEGIN IMMEDIATE');
      return;
    } catch (error) {
      if (driverErrorOf(error)?.code !== 'SQLITE_BUSY') throw error;
      if (Date.now() >= deadline) throw busy(timeoutSeconds);
      // better-sqlite3 waits synchronously: let the event loop run between tries.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
