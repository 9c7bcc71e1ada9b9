import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl, slotLockMigrations } from '../../src';
import { killCli, runCli, type CliResult } from '../support/cli';
import { ENGINES, type TestEngine } from '../support/engines';

/** How many `slotlock migrate` start at once, and how often: a race shows up in some rounds only. */
const RUNS = 6;
const ROUNDS = 3;
const LABEL = 'cli_migrate_race';
const MIGRATION_NAMES = slotLockMigrations.map((migration) => migration.name);

/** What the database holds after the runs: the lock table or not, and TypeORM's records. */
async function schemaOf(engine: TestEngine): Promise<{ lockTable: boolean; recorded: string[] }> {
  const dataSource = new DataSource(dataSourceOptionsFromUrl(engine.url(LABEL)));
  await dataSource.initialize();
  const runner = dataSource.createQueryRunner();
  try {
    const lockTable = await runner.hasTable('drydock_slotlock');
    const rows = (await runner.query(
      `SELECT name FROM ${dataSource.driver.escape('migrations')} ORDER BY id`,
    )) as Array<{
      name: string;
    }>;
    return { lockTable, recorded: rows.map((row) => row.name) };
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
        expect(await schemaOf(engine)).toEqual({ lockTable: true, recorded: MIGRATION_NAMES });
      }
    });

    it(`${RUNS} runs of --revert at once: every run exits 0, one reverts, the table and its record are gone`, async () => {
      for (let round = 1; round <= ROUNDS; round += 1) {
        await engine.recreate(LABEL);
        expect((await runCli(['migrate', '--url', engine.url(LABEL)])).code).toBe(0);
        const results = await migrateAtOnce(engine, ['--revert']);
        expect({ round, outcomes: outcomes(results) }).toEqual({
          round,
          outcomes: Array.from({ length: RUNS }, () => ({ code: 0, stderr: '' })),
        });
        const reverted = results.filter((result) => /^reverted /m.test(result.stdout));
        expect({ round, reverted: reverted.length }).toEqual({ round, reverted: 1 });
        expect(await schemaOf(engine)).toEqual({ lockTable: false, recorded: MIGRATION_NAMES.slice(0, -1) });
      }
    });
  },
);
