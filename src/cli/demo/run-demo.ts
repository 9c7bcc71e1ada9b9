import type { DataSource } from 'typeorm';
import { clearLocks } from '../clear-locks';
import { DEFAULT_SLOT_LOCK_OPTIONS } from '../../index';
import { cliDataSourceOptions, withDatabase } from '../database';
import { describeLocation, recreateDatabase } from '../server-admin';
import { EXIT } from '../exit-codes';
import { formatTable } from '../format-table';
import { plural } from '../report-held';
import { AllocatorPool } from './allocator-pool';
import { bindingNames, createDemoTables, deleteResources, insertBindings, resourcesPerBinding } from './demo-schema';
import type { AllocatorEvent } from './protocol';

/** The lock table (the service's default). */
const LOCK_TABLE = DEFAULT_SLOT_LOCK_OPTIONS.tableName;

/** Settings of {@link runDemo}. */
export interface DemoSettings {
  /** A database URL: the demo's database goes on its server (for SQLite, in its folder). */
  readonly url: string;
  /** The demo's database: dropped and recreated. */
  readonly database: string;
  readonly allocators: number;
  readonly bindings: number;
  /** The pause between loading free bindings and allocating (the seed's sleep(10)). */
  readonly minPauseMs: number;
  readonly maxPauseMs: number;
}

/** What one round came to. */
interface RoundOutcome {
  readonly resources: number;
  /** Bindings allocated more than once, with how many times. */
  readonly doubles: ReadonlyArray<readonly [bindingId: number, count: number]>;
  readonly conflicts: number;
}

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/**
 * The seed's test plan, live: allocators in separate processes race for a few
 * bindings, first without slot locks (bindings get allocated twice), then with them
 * (never). Resolves to the exit code: 0 when round 1 raced and round 2 did not.
 */
export async function runDemo(settings: DemoSettings): Promise<number> {
  cliDataSourceOptions(settings.url); // a URL that cannot be used is said in the usual words
  out("slotlock demo: the race of Phorge's slot-lock test plan (D14118), live");
  const demoUrl = await recreateDatabase(settings.url, settings.database);
  const where = describeLocation(demoUrl);

  return withDatabase(
    demoUrl,
    async ({ dataSource }) => {
      await dataSource.runMigrations();
      await createDemoTables(dataSource);
      const names = bindingNames(settings.bindings);
      await insertBindings(dataSource, names);
      out(`  database ${settings.database} at ${where}: dropped, recreated, migrated`);
      out(`  ${plural(names.length, 'binding')}: ${names.map((name, i) => `${i + 1} ${name}`).join(', ')}`);
      out(
        `  ${settings.allocators} allocators, each its own OS process; each loads the free bindings, ` +
          `pauses ${settings.minPauseMs}-${settings.maxPauseMs} ms, then allocates one`,
      );

      const pool = new AllocatorPool();
      try {
        process.stdout.write('  starting the allocators...');
        const pids = await pool.start(
          Array.from({ length: settings.allocators }, (_, i) => ({
            url: demoUrl,
            allocator: i + 1,
            minPauseMs: settings.minPauseMs,
            maxPauseMs: settings.maxPauseMs,
          })),
        );
        out(` ready (pids ${pids.join(', ')})`);

        out();
        out('Round 1: without slot locks (each allocator takes the first free binding it loaded)');
        const round1 = await runRound(pool, dataSource, 1, false);

        await deleteResources(dataSource);
        await clearLocks(dataSource);
        out();
        out(
          "Round 2: with slot locks (commitWithLocks(resourcePHID, ['binding(ID)'], insert resource);" +
            ' a loser tries the next binding it loaded)',
        );
        out("  round 1's resources deleted: every binding is free again");
        const round2 = await runRound(pool, dataSource, 2, true);

        await pool.stop();
        return summarize(settings, round1, round2);
      } finally {
        pool.kill();
      }
    },
    { createSqliteFile: true },
  );
}

async function runRound(
  pool: AllocatorPool,
  dataSource: DataSource,
  round: number,
  useSlotLocks: boolean,
): Promise<RoundOutcome> {
  const started = Date.now();
  let conflicts = 0;
  await pool.round(round, useSlotLocks, (event) => {
    if (event.type === 'conflict') conflicts += 1;
    const seconds = ((Date.now() - started) / 1000).toFixed(2);
    out(`  +${seconds}s  allocator ${event.allocator}  ${describeEvent(event)}`);
  });
  const perBinding = await resourcesPerBinding(dataSource, round);
  const resources = [...perBinding.values()].reduce((sum, count) => sum + count, 0);
  const doubles = [...perBinding].filter(([, count]) => count > 1);
  if (doubles.length > 0) {
    for (const [bindingId, count] of doubles) {
      out(`  => binding ${bindingId} allocated ${count} times: DOUBLE ALLOCATION`);
    }
  } else {
    out(
      `  => every binding allocated at most once (${plural(resources, 'resource')}, ` +
        `${plural(conflicts, 'conflict')})`,
    );
  }
  return { resources, doubles, conflicts };
}

function describeEvent(event: AllocatorEvent): string {
  switch (event.type) {
    case 'loaded':
      return event.freeBindings.length === 0
        ? `loads the free bindings: none; pauses ${event.pauseMs} ms`
        : `loads the free bindings: ${event.freeBindings.join(', ')}; pauses ${event.pauseMs} ms`;
    case 'allocated':
      return `allocates binding ${event.bindingId} as ${event.resourcePHID}`;
    case 'conflict':
      return `binding ${event.bindingId} is taken: SlotLockException: ${event.message}`;
    case 'gave-up':
      return `gives up: ${event.reason}`;
    default:
      return event.type;
  }
}

function summarize(settings: DemoSettings, round1: RoundOutcome, round2: RoundOutcome): number {
  const twice = (round: RoundOutcome): string => String(round.doubles.length);
  out();
  out('Summary');
  const table = formatTable(
    ['', 'round 1: no slot locks', 'round 2: slot locks'],
    [
      ['bindings', String(settings.bindings), String(settings.bindings)],
      ['allocators', String(settings.allocators), String(settings.allocators)],
      ['resources created', String(round1.resources), String(round2.resources)],
      ['bindings allocated twice or more', twice(round1), twice(round2)],
      ['conflicts (SlotLockException)', String(round1.conflicts), String(round2.conflicts)],
    ],
  );
  process.stdout.write(table.replace(/^/gm, '  ').replace(/ +$/gm, ''));
  out();
  out(`The demo's tables stay in ${settings.database} for a look: binding, resource, ${LOCK_TABLE}.`);

  if (round2.doubles.length > 0) {
    out('FAILED: round 2 allocated a binding twice although every allocation took its slot lock.');
    return EXIT.error;
  }
  if (round1.doubles.length === 0) {
    out(
      'INCONCLUSIVE: round 1 did not happen to race this time (no binding was allocated twice without locks),\n' +
        'so there was nothing for the slot locks to prevent. Run the demo again.',
    );
    return EXIT.error;
  }
  out(
    'OK: without slot locks a binding was allocated twice; with them every binding was allocated at most once,\n' +
      'and the losers got a SlotLockException instead.',
  );
  return EXIT.ok;
}
