import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl, slotLockMigrations, slotLockSessionMigrations } from '../../src';
import { killCli, runCli, type CliResult } from '../support/cli';
import { withAdmin, testDatabaseName } from '../support/database';
import { ENGINES, POSTGRES_SERVER_URL, type TestEngine } from '../support/engines';
import { startTcpRelay } from '../support/tcp-relay';

/** How many `slotlock migrate` start at once, and how often: a race shows up in some rounds only. */
const RUNS = 6;
const ROUNDS = 3;
const LABEL = 'cli_migrate_race';
/** Both sets, as `slotlock migrate` runs them: the lock table's, then the session table's. */
const MIGRATION_NAMES = [...slotLockMigrations, ...slotLockSessionMigrations].map((migration) => migration.name);

/** What the database holds after the runs: the lock and session tables or not, and TypeORM's records. */
async function schemaOf(
  engine: TestEngine,
): Promise<{ lockTable: boolean; sessionTable: boolean; recorded: string[] }> {
  const dataSource = new DataSource(dataSourceOptionsFromUrl(engine.url(LABEL)));
  await dataSource.initialize();
  const runner = dataSource.createQueryRunner();
  try {
    const lockTable = await runner.hasTable('drydock_slotlock');
    const sessionTable = await runner.hasTable('drydock_slotlock_session');
    const rows = (await runner.query(
      `SELECT name FROM ${dataSource.driver.escape('migrations')} ORDER BY id`,
    )) as Array<{
      name: string;
    }>;
    return { lockTable, sessionTable, recorded: rows.map((row) => row.name) };
  } finally {
    await runner.release();
    await dataSource.destroy();
  }
}

/** Runs `slotlock migrate ...args` RUNS times at once on the engine's test database. */
function migrateAtOnce(engine: TestEngine, args: readonly string[] = []): Promise<CliResult[]> {
  return Promise.all(Array.from({ length: RUNS }, () => runCli(['migrate', ...args, '--url', engine.url(LABEL)])));
}

/** Each run's exit code and stderr, for one readable failure. */
function outcomes(results: readonly CliResult[]): Array<{ code: number | null; stderr: string }> {
  return results.map(({ code, stderr }) => ({ code, stderr }));
}

afterEach(() => killCli());

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))(
  'slotlock migrate, %s: several at once',
  (_name, engine) => {
    it(`${RUNS} runs on a fresh database, ${ROUNDS} rounds: every run exits 0, one runs the migrations, one record each`, async () => {
      for (let round = 1; round <= ROUNDS; round += 1) {
        await engine.recreate(LABEL);
        const results = await migrateAtOnce(engine);
        expect({ round, outcomes: outcomes(results) }).toEqual({
          round,
          outcomes: Array.from({ length: RUNS }, () => ({ code: 0, stderr: '' })),
        });
        const ran = results.filter((result) => /^ran /m.test(result.stdout));
        expect({ round, ran: ran.length }).toEqual({ round, ran: 1 });
        expect(ran[0]!.stdout.match(/^ran /gm)).toHaveLength(MIGRATION_NAMES.length);
        expect(await schemaOf(engine)).toEqual({ lockTable: true, sessionTable: true, recorded: MIGRATION_NAMES });
      }
    });

    it(`${RUNS} runs of --revert at once: every run exits 0; taking turns, one run reverts each migration; no table or record is left`, async () => {
      for (let round = 1; round <= ROUNDS; round += 1) {
        await engine.recreate(LABEL);
        expect((await runCli(['migrate', '--url', engine.url(LABEL)])).code).toBe(0);
        const results = await migrateAtOnce(engine, ['--revert']);
        expect({ round, outcomes: outcomes(results) }).toEqual({
          round,
          outcomes: Array.from({ length: RUNS }, () => ({ code: 0, stderr: '' })),
        });
        const reverted = results.flatMap((result) => result.stdout.match(/^reverted \S+/gm) ?? []);
        // Each migration once; the other runs find nothing left to revert.
        expect({ round, reverted: reverted.sort() }).toEqual({
          round,
          reverted: MIGRATION_NAMES.map((name) => `reverted ${name}`).sort(),
        });
        expect(results.filter((result) => /nothing to revert/.test(result.stdout))).toHaveLength(
          RUNS - MIGRATION_NAMES.length,
        );
        expect(await schemaOf(engine)).toEqual({ lockTable: false, sessionTable: false, recorded: [] });
      }
    });
  },
);

/** How many `slotlock migrate --create-database` start at once on a missing database. */
const CREATORS = 8;
const CREATE_LABEL = 'cli_create_race';

/** Drops the test database of CREATE_LABEL, so that every run finds it missing. */
async function dropCreateDatabase(engine: TestEngine): Promise<void> {
  const name = testDatabaseName(CREATE_LABEL);
  if (engine.name === 'mariadb') {
    await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${name}\``));
    return;
  }
  const admin = new DataSource({ type: 'postgres', url: `${POSTGRES_SERVER_URL}/postgres` });
  await admin.initialize();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.destroy();
  }
}

describe.each(ENGINES.filter((engine) => engine.name !== 'sqlite').map((engine) => [engine.name, engine] as const))(
  'slotlock migrate --create-database, %s: several at once on a missing database',
  (_name, engine) => {
    it(`${CREATORS} runs, ${ROUNDS} rounds: every run exits 0, one creates the database, one runs the migrations`, async () => {
      for (let round = 1; round <= ROUNDS; round += 1) {
        await dropCreateDatabase(engine);
        // Every run checks that the database is missing, then creates it. A relay holds each
        // CREATE DATABASE back until all runs have sent theirs, so that they all reach the
        // server together, every round: the race happens every time, not by chance.
        const direct = engine.url(CREATE_LABEL);
        const relay = await startTcpRelay(Number(new URL(direct).port), {
          holdBack: { text: 'CREATE DATABASE', count: CREATORS, timeoutMs: 10_000 },
        });
        const url = direct.replace(/:\d+\//, `:${relay.port}/`);
        const results = await Promise.all(
          Array.from({ length: CREATORS }, () => runCli(['migrate', '--create-database', '--url', url])),
        ).finally(() => relay.close());
        expect({ round, held: relay.held() }).toEqual({ round, held: CREATORS });
        expect({ round, outcomes: outcomes(results) }).toEqual({
          round,
          outcomes: Array.from({ length: CREATORS }, () => ({ code: 0, stderr: '' })),
        });
        const created = results.filter((result) => /^created database /m.test(result.stdout));
        const ran = results.filter((result) => /^ran /m.test(result.stdout));
        expect({ round, created: created.length, ran: ran.length }).toEqual({ round, created: 1, ran: 1 });
      }
      await dropCreateDatabase(engine);
    });
  },
);
