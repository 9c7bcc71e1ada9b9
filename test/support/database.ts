import 'reflect-metadata';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { DrydockSlotLock, slotLockMigrations } from '../../src';

/** The MariaDB server the tests use; override with SLOTLOCK_TEST_MYSQL_URL (no database part). */
export const MYSQL_SERVER_URL = process.env.SLOTLOCK_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

/**
 * What tells this checkout's test databases from another's on the same servers:
 * SLOTLOCK_TEST_RUN, else a short hash of the checkout's path. Two checkouts (a clean
 * clone beside a working tree, say) can then run their tests at once without dropping
 * each other's databases.
 */
export const TEST_RUN_TAG = (
  process.env.SLOTLOCK_TEST_RUN ??
  createHash('sha1')
    .update(path.resolve(__dirname, '..', '..'))
    .digest('hex')
    .slice(0, 6)
).replace(/[^A-Za-z0-9_]/g, '_');

/** A database name for one test file, e.g. `slotlock_test_3fa2c1_conflict` (63 characters at most, PostgreSQL's limit). */
export function testDatabaseName(label: string): string {
  return `slotlock_test_${TEST_RUN_TAG}_${label.replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, 63);
}

/** Runs SQL on the server without choosing a database (CREATE/DROP DATABASE, SET GLOBAL). */
export async function withAdmin<T>(fn: (admin: DataSource) => Promise<T>): Promise<T> {
  const admin = new DataSource({ type: 'mysql', url: `${MYSQL_SERVER_URL}/mysql` });
  await admin.initialize();
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

/** Drops and re-creates a database, so each test file starts from nothing. */
export async function recreateDatabase(name: string): Promise<void> {
  await withAdmin(async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await admin.query(`CREATE DATABASE \`${name}\``);
  });
}

/** Options for a DataSource on one test database, with the package's entity and migrations. */
export function dataSourceOptions(database: string, extra: Partial<DataSourceOptions> = {}): DataSourceOptions {
  return {
    type: 'mysql',
    url: `${MYSQL_SERVER_URL}/${database}`,
    entities: [DrydockSlotLock],
    migrations: [...slotLockMigrations],
    ...extra,
  } as DataSourceOptions;
}

/**
 * A fresh database holding the migrated lock table, and an initialized DataSource on it.
 * Call `destroy()` in afterAll.
 */
export async function freshDataSource(label: string, extra: Partial<DataSourceOptions> = {}): Promise<DataSource> {
  const database = testDatabaseName(label);
  await recreateDatabase(database);
  const dataSource = new DataSource(dataSourceOptions(database, extra));
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

/** Every row of the lock table, as plain strings, ordered by id. */
export async function allRows(
  dataSource: DataSource,
): Promise<Array<{ ownerPHID: string; lockIndex: string; lockKey: string }>> {
  const rows = (await dataSource.query(
    'SELECT CAST(ownerPHID AS CHAR) AS ownerPHID, CAST(lockIndex AS CHAR) AS lockIndex, lockKey FROM drydock_slotlock ORDER BY id',
  )) as Array<{ ownerPHID: string; lockIndex: string; lockKey: string }>;
  return rows;
}

/**
 * Sets server-wide variables (`SET GLOBAL`) for connections opened from now on, and
 * resolves to a function that puts the old values back. How a test gives every
 * connection of a DataSource a session setting (an `sql_mode`, a packet size), as a
 * server configured so would: mysql2 has no per-connection start-up statement.
 */
export async function setGlobals(values: Record<string, string | number>): Promise<() => Promise<void>> {
  const saved = await withAdmin(async (admin) => {
    const before: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(values)) {
      const [row] = (await admin.query(`SELECT @@GLOBAL.${name} AS v`)) as Array<{ v: unknown }>;
      before[name] = row!.v;
      await admin.query(`SET GLOBAL ${name} = ?`, [value]);
    }
    return before;
  });
  return () =>
    withAdmin(async (admin) => {
      for (const [name, value] of Object.entries(saved)) {
        // Numeric variables refuse a quoted number: put back what was read in its own type.
        const typed = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
        await admin.query(`SET GLOBAL ${name} = ?`, [typed]);
      }
    });
}
