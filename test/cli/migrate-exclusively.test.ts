import { DataSource, type DataSourceOptions, type QueryRunner } from 'typeorm';
import { dataSourceOptionsFromUrl } from '../../src';
import { CliError } from '../../src/cli/cli-error';
import {
  MIGRATION_LOCK_NAME,
  migrateExclusively,
  POSTGRES_MIGRATION_LOCK_KEY,
} from '../../src/cli/migrate-exclusively';
import { ENGINES, type EngineName, type TestEngine } from '../support/engines';

const LABEL = 'cli_migrate_lock';

/** SQL that takes and gives back the migration lock from another session, per engine. */
const HOLD: Record<EngineName, { take: string; give: string }> = {
  mariadb: {
    take: `SELECT GET_LOCK('${MIGRATION_LOCK_NAME}', 0)`,
    give: `SELECT RELEASE_LOCK('${MIGRATION_LOCK_NAME}')`,
  },
  postgres: {
    take: `SELECT pg_advisory_lock(${POSTGRES_MIGRATION_LOCK_KEY})`,
    give: `SELECT pg_advisory_unlock(${POSTGRES_MIGRATION_LOCK_KEY})`,
  },
  sqlite: { take: 'BEGIN IMMEDIATE', give: 'COMMIT' },
};

/** A DataSource on the engine's test database; SQLite's busy timeout short, so a test need not wait 5 s. */
async function open(engine: TestEngine): Promise<DataSource> {
  const options = dataSourceOptionsFromUrl(engine.url(LABEL));
  const dataSource = new DataSource(
    engine.name === 'sqlite' ? ({ ...options, timeout: 200 } as DataSourceOptions) : options,
  );
  return dataSource.initialize();
}

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))('migrateExclusively on %s', (_name, engine) => {
  let migrating: DataSource;
  let other: DataSource;
  let holder: QueryRunner;

  beforeAll(async () => {
    await engine.recreate(LABEL);
    migrating = await open(engine);
    other = await open(engine);
  });
  afterAll(async () => {
    await migrating?.destroy();
    await other?.destroy();
  });
  beforeEach(async () => {
    holder = other.createQueryRunner();
    await holder.query(HOLD[engine.name].take);
  });
  afterEach(async () => {
    await holder.query(HOLD[engine.name].give).catch(() => undefined);
    await holder.release();
  });

  it('waits while another session migrates, and runs as soon as it is done', async () => {
    const started = Date.now();
    setTimeout(() => void holder.query(HOLD[engine.name].give), 500);
    const ranAfterMs = await migrateExclusively(migrating, async () => Date.now() - started, 10);
    expect(ranAfterMs).toBeGreaterThanOrEqual(450);
    expect(ranAfterMs).toBeLessThan(5000);
  });

  it('gives up after the timeout with a message that says what to do, without running the work', async () => {
    const work = jest.fn(async () => 'ran');
    const attempt = migrateExclusively(migrating, work, 1);
    await expect(attempt).rejects.toThrow(CliError);
    await expect(attempt).rejects.toThrow(
      'another migration of this database has been running for over 1 s: wait for it to finish, then run `slotlock migrate` again',
    );
    expect(work).not.toHaveBeenCalled();
  });

  it('tells TypeORM to run without a transaction of its own only on SQLite (the lock is the transaction)', async () => {
    await holder.query(HOLD[engine.name].give);
    const options = await migrateExclusively(migrating, async (given) => given, 10);
    expect(options).toEqual({ transaction: engine.name === 'sqlite' ? 'none' : 'all' });
  });
});

describe.each(ENGINES.filter((engine) => engine.name === 'sqlite').map((engine) => [engine] as const))(
  'migrateExclusively on SQLite',
  (engine) => {
    it('commits what the work did as a whole, or nothing of it when the work fails', async () => {
      await engine.recreate(LABEL);
      const dataSource = await open(engine);
      try {
        const failing = migrateExclusively(dataSource, async () => {
          await dataSource.query('CREATE TABLE half_done (x INTEGER)');
          throw new Error('the second step failed');
        });
        await expect(failing).rejects.toThrow('the second step failed');
        expect(await dataSource.createQueryRunner().hasTable('half_done')).toBe(false);

        await migrateExclusively(dataSource, () => dataSource.query('CREATE TABLE done (x INTEGER)'));
        expect(await dataSource.createQueryRunner().hasTable('done')).toBe(true);
      } finally {
        await dataSource.destroy();
      }
    });
  },
);
