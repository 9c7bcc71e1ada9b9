import 'reflect-metadata';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource, Table, type DataSourceOptions, type TableColumnOptions } from 'typeorm';
import { DrydockSlotLock, dataSourceOptionsFromUrl } from '../../src';
import { MYSQL_SERVER_URL, recreateDatabase, TEST_RUN_TAG, testDatabaseName } from './database';

/** The engines the shared contract runs on. */
export type EngineName = 'mariadb' | 'postgres' | 'sqlite';

/** The PostgreSQL server the tests use; override with SLOTLOCK_TEST_POSTGRES_URL (no database part). */
export const POSTGRES_SERVER_URL = process.env.SLOTLOCK_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';

/** Where the SQLite test files live. */
export const SQLITE_TEST_DIR = path.join(tmpdir(), `drydock-slotlock-tests-${TEST_RUN_TAG}`);

/** One engine, as the shared contract tests see it. */
export interface TestEngine {
  readonly name: EngineName;
  /** A URL for a test database named after `label` (what child processes connect to). */
  url(label: string): string;
  /** Empties the test database of `label` (drops and re-creates it, or deletes the file). */
  recreate(label: string): Promise<void>;
  /** How this engine writes the n-th (1-based) bound parameter. */
  placeholder(n: number): string;
}

const mariadb: TestEngine = {
  name: 'mariadb',
  url: (label) => `${MYSQL_SERVER_URL}/${testDatabaseName(label)}`,
  recreate: (label) => recreateDatabase(testDatabaseName(label)),
  placeholder: () => '?',
};

const postgres: TestEngine = {
  name: 'postgres',
  url: (label) => `${POSTGRES_SERVER_URL}/${testDatabaseName(label)}`,
  async recreate(label) {
    const admin = new DataSource({ type: 'postgres', url: `${POSTGRES_SERVER_URL}/postgres` });
    try {
      await admin.initialize();
    } catch (error) {
      throw new Error(
        `PostgreSQL is not reachable at ${POSTGRES_SERVER_URL}: start it (pg_ctlcluster --skip-systemctl-redirect ` +
          '$(ls /etc/postgresql) main start) or leave postgres out of SLOTLOCK_TEST_ENGINES',
        { cause: error },
      );
    }
    try {
      const name = testDatabaseName(label);
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${name}"`);
    } finally {
      await admin.destroy();
    }
  },
  placeholder: (n) => `$${n}`,
};

const sqlite: TestEngine = {
  name: 'sqlite',
  url: (label) => `sqlite:${path.join(SQLITE_TEST_DIR, `${testDatabaseName(label)}.sqlite`)}`,
  async recreate(label) {
    mkdirSync(SQLITE_TEST_DIR, { recursive: true });
    const file = path.join(SQLITE_TEST_DIR, `${testDatabaseName(label)}.sqlite`);
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(file + suffix)) rmSync(file + suffix);
    }
  },
  placeholder: () => '?',
};

const ALL_ENGINES: readonly TestEngine[] = [mariadb, postgres, sqlite];

/**
 * The engines selected by SLOTLOCK_TEST_ENGINES (comma-separated; default all three).
 * A selected engine whose server is down fails its tests with a message saying how
 * to start it: it is never skipped silently.
 */
export const ENGINES: readonly TestEngine[] = (() => {
  const wanted = (process.env.SLOTLOCK_TEST_ENGINES ?? 'mariadb,postgres,sqlite')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  const unknown = wanted.filter((name) => !ALL_ENGINES.some((engine) => engine.name === name));
  if (unknown.length > 0) throw new Error(`SLOTLOCK_TEST_ENGINES names unknown engines: ${unknown.join(', ')}`);
  return ALL_ENGINES.filter((engine) => wanted.includes(engine.name));
})();

/** A fresh, migrated database on `engine` for the test file `label`, and a DataSource on it. */
export async function freshEngineDataSource(
  engine: TestEngine,
  label: string,
  extra: Partial<DataSourceOptions> = {},
): Promise<DataSource> {
  await engine.recreate(label);
  const dataSource = new DataSource({ ...dataSourceOptionsFromUrl(engine.url(label)), ...extra } as DataSourceOptions);
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

/** Every lock row as plain strings, ordered by id, read through the entity (any engine). */
export async function lockRows(
  dataSource: DataSource,
): Promise<Array<{ ownerPHID: string; lockIndex: string; lockKey: string }>> {
  const rows = await dataSource.getRepository(DrydockSlotLock).find({ order: { id: 'ASC' } });
  return rows.map(({ ownerPHID, lockIndex, lockKey }) => ({ ownerPHID, lockIndex, lockKey }));
}

/** How many locks `owner` holds, as seen by `db` (a DataSource, or a transaction's manager). */
export async function countOwned(db: { getRepository: DataSource['getRepository'] }, owner: string): Promise<number> {
  return db.getRepository(DrydockSlotLock).countBy({ ownerPHID: owner });
}

/** Empties the lock table. */
export async function clearLocks(dataSource: DataSource): Promise<void> {
  await dataSource.getRepository(DrydockSlotLock).clear();
}

/** Empties the lock table and the session table (the session migration must have run). */
export async function clearLocksAndSessions(dataSource: DataSource): Promise<void> {
  await dataSource.query(`DELETE FROM ${dataSource.driver.escape('drydock_slotlock')}`);
  await dataSource.query(`DELETE FROM ${dataSource.driver.escape('drydock_slotlock_session')}`);
}

/** Creates a scratch table for a test's own writes (portable DDL through TypeORM). */
export async function createScratchTable(
  dataSource: DataSource,
  name: string,
  columns: TableColumnOptions[],
): Promise<void> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.dropTable(name, true);
    await runner.createTable(new Table({ name, columns }));
  } finally {
    await runner.release();
  }
}
