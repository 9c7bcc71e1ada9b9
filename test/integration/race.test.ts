import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { DataSource } from 'typeorm';
import { ENGINES, clearLocks, freshEngineDataSource, lockRows, type EngineName } from '../support/engines';
import { bigKey, raceKey, type RaceWorkerConfig, type RaceWorkerResult } from '../support/race-worker';
import { killWorkers, spawnWorkers } from '../support/spawn-workers';

const LABEL = 'race';
const WORKER_FILE = path.join(__dirname, '..', 'support', 'race-worker.ts');
/** In every owner of this run (see {@link RaceWorkerConfig.runId}). */
const RUN_ID = randomBytes(3).toString('hex');

/** The load of the small-sets race on each engine. */
interface SmallSetsLoad {
  /** Worker processes (at least 3, so that more than two writers meet). */
  readonly processes: number;
  /** Concurrent callers in each process. */
  readonly loops: number;
  /** How long the callers race. */
  readonly durationMs: number;
}

/**
 * Per engine, so that one engine can be lightened without weakening the others. Three
 * seconds of racing is hundreds of successes and conflicts on each engine; most of a
 * test's time is starting the workers (ts-node, TypeORM), so the whole file, six races,
 * stays within about a minute on two cores.
 */
const SMALL_SETS_LOAD: Record<EngineName, SmallSetsLoad> = {
  mariadb: { processes: 4, loops: 2, durationMs: 3000 },
  postgres: { processes: 4, loops: 2, durationMs: 3000 },
  sqlite: { processes: 4, loops: 2, durationMs: 3000 },
};

/** How long the two processes of the 200-key race run on each engine. */
const BIG_SETS_DURATION_MS: Record<EngineName, number> = {
  mariadb: 3000,
  postgres: 3000,
  sqlite: 3000,
};

/** Sums the counters of every worker, and gathers their samples. */
function total(results: readonly RaceWorkerResult[]) {
  const sum = (pick: (result: RaceWorkerResult) => number): number =>
    results.reduce((acc, result) => acc + pick(result), 0);
  return {
    attempts: sum((r) => r.attempts),
    successes: sum((r) => r.successes),
    successesByWorker: results.map((r) => r.successes),
    conflicts: sum((r) => r.conflicts),
    conflictsHeld: sum((r) => r.conflictsHeld),
    conflictsContention: sum((r) => r.conflictsContention),
    conflictsEmptyLockMap: sum((r) => r.conflictsEmptyLockMap),
    maxExceptionAttempts: Math.max(0, ...results.map((r) => r.maxExceptionAttempts)),
    malformedConflicts: sum((r) => r.malformedConflicts),
    escaped: sum((r) => r.escaped),
    escapedContention: sum((r) => r.escapedContention),
    partialSets: sum((r) => r.partialSets),
    heldAfterConflict: sum((r) => r.heldAfterConflict),
    releaseMismatches: sum((r) => r.releaseMismatches),
    leftAfterRelease: sum((r) => r.leftAfterRelease),
    observerScans: sum((r) => r.observerScans),
    observerPartialSightings: sum((r) => r.observerPartialSightings),
    elapsedMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
    startupMs: Math.max(0, ...results.map((r) => r.startupMs)),
    slotUses: results.reduce<number[]>((acc, r) => r.slotUses.map((uses, slot) => uses + (acc[slot] ?? 0)), []),
    extraSlotAttempts: sum((r) => r.extraSlotAttempts),
    retries: results.reduce<Record<string, number>>((acc, r) => {
      for (const [name, n] of Object.entries(r.retries)) acc[name] = (acc[name] ?? 0) + n;
      return acc;
    }, {}),
    escapedSamples: results.flatMap((r) => r.escapedSamples.map((sample) => ({ workerId: r.workerId, ...sample }))),
    violationSamples: results.flatMap((r) => r.violationSamples),
  };
}

/**
 * Server-wide InnoDB counters (MariaDB only): how many deadlocks and row-lock waits the
 * race caused, i.e. whether the service's contention retries were exercised at all
 * (server-wide, so other tests running at the same time add to them: logged, not asserted).
 */
async function innodbCounters(dataSource: DataSource): Promise<Record<string, number>> {
  const rows = (await dataSource.query(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_deadlocks', 'Innodb_row_lock_waits')",
  )) as Array<{ Variable_name: string; Value: string }>;
  return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
}

async function innodbDelta(dataSource: DataSource, before: Record<string, number>): Promise<Record<string, number>> {
  const after = await innodbCounters(dataSource);
  return Object.fromEntries(Object.entries(after).map(([name, value]) => [name, value - (before[name] ?? 0)]));
}

function log(
  title: string,
  totals: ReturnType<typeof total>,
  results: readonly RaceWorkerResult[],
  server: Record<string, number> | undefined,
): void {
  const { escapedSamples, violationSamples, ...counts } = totals;
  const perWorker = results.map(
    (r) => `w${r.workerId}: ${r.successes} ok / ${r.conflicts} conflicts / ${r.escaped} escaped`,
  );
  console.log(
    `${title}\n${JSON.stringify(counts, null, 2)}\n${perWorker.join('\n')}` +
      (server !== undefined ? `\nserver (global) during the race: ${JSON.stringify(server)}` : '') +
      (escapedSamples.length > 0 ? `\nescaped: ${JSON.stringify(escapedSamples, null, 2)}` : '') +
      (violationSamples.length > 0 ? `\nviolations: ${JSON.stringify(violationSamples, null, 2)}` : ''),
  );
}

/** The assertions both tests share: nothing escaped, no set held in part, nothing left over. */
function expectSpecHeld(totals: ReturnType<typeof total>): void {
  // Compared as objects so that a failure prints the recorded errors themselves.
  expect({ escaped: totals.escaped, samples: totals.escapedSamples }).toEqual({ escaped: 0, samples: [] });
  expect({
    partialSets: totals.partialSets,
    heldAfterConflict: totals.heldAfterConflict,
    observerPartialSightings: totals.observerPartialSightings,
    releaseMismatches: totals.releaseMismatches,
    leftAfterRelease: totals.leftAfterRelease,
    malformedConflicts: totals.malformedConflicts,
    samples: totals.violationSamples,
  }).toEqual({
    partialSets: 0,
    heldAfterConflict: 0,
    observerPartialSightings: 0,
    releaseMismatches: 0,
    leftAfterRelease: 0,
    malformedConflicts: 0,
    samples: [],
  });
}

describe.each(ENGINES)('SPEC 4.1/4.4 multi-process race on $name', (engine) => {
  const url = engine.url(LABEL);
  const small = SMALL_SETS_LOAD[engine.name];
  let dataSource: DataSource;

  /** Runs the workers, logging their totals (and on MariaDB the InnoDB counters they moved). */
  async function race(title: string, configs: readonly RaceWorkerConfig[]): Promise<ReturnType<typeof total>> {
    const before = engine.name === 'mariadb' ? await innodbCounters(dataSource) : undefined;
    const results = await spawnWorkers<RaceWorkerConfig, RaceWorkerResult>({
      file: WORKER_FILE,
      configs,
      barrier: true,
      timeoutMs: 90_000,
    });
    const totals = total(results);
    const server = before !== undefined ? await innodbDelta(dataSource, before) : undefined;
    log(`race on ${engine.name}: ${title}`, totals, results, server);
    // Every worker raced on this engine, not on some default database.
    expect(results.map((r) => r.dataSourceType)).toEqual(results.map(() => dataSource.options.type));
    return totals;
  }

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, LABEL);
  });

  beforeEach(async () => {
    // Each test starts from an empty table even if the one before it failed.
    await clearLocks(dataSource);
  });

  afterEach(() => {
    // A test that timed out must not leave workers racing behind it.
    killWorkers();
  });

  afterAll(async () => {
    killWorkers();
    await dataSource?.destroy();
  });

  it(`${small.processes * small.loops} callers in ${small.processes} processes on overlapping sets of 2-4 keys out of 10: all or nothing, no raw deadlock, nothing left`, async () => {
    const keyPool = Array.from({ length: 10 }, (_, i) => raceKey(i));
    const configs: RaceWorkerConfig[] = Array.from({ length: small.processes }, (_, workerId) => ({
      url,
      runId: RUN_ID,
      workerId,
      durationMs: small.durationMs,
      loops: small.loops,
      poolSize: 4,
      holdMaxMs: 3,
      random: { keyPool, minKeys: 2, maxKeys: 4, duplicateChance: 0.2 },
      ...(workerId === 0 ? { observeEveryMs: 2 } : {}),
    }));

    const totals = await race(`${small.processes} processes x ${small.loops} callers, 2-4 of 10 keys`, configs);

    expect(totals.successes).toBeGreaterThan(0);
    expect(totals.conflicts).toBeGreaterThan(0); // there was contention to survive
    expectSpecHeld(totals);
    expect(totals.observerScans).toBeGreaterThan(0);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  it('callers in 4 processes taking slots of a 4-slot family: each slot has one holder, spread evenly, nothing left', async () => {
    const configs: RaceWorkerConfig[] = Array.from({ length: 4 }, (_, workerId) => ({
      url,
      runId: RUN_ID,
      workerId,
      durationMs: 3000,
      loops: 2,
      poolSize: 4,
      holdMaxMs: 3,
      slots: { name: `race.licence(${RUN_ID})`, limit: 4 },
      ...(workerId === 0 ? { observeEveryMs: 2 } : {}),
    }));

    const totals = await race('4 processes x 2 callers on 4 slots', configs);

    expect(totals.successes).toBeGreaterThan(0);
    expect(totals.conflicts).toBeGreaterThan(0); // eight callers, four slots
    expectSpecHeld(totals);
    // Every slot was used, and none much more than the others (the candidates come in random order).
    expect(totals.slotUses).toHaveLength(4);
    for (const uses of totals.slotUses) expect(uses).toBeGreaterThan(totals.successes / 8);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  it('callers in 4 processes waiting in line for a 4-slot family: each slot has one holder, every process is served, nobody gives up', async () => {
    const configs: RaceWorkerConfig[] = Array.from({ length: 4 }, (_, workerId) => ({
      url,
      runId: RUN_ID,
      workerId,
      durationMs: 3000,
      loops: 4,
      poolSize: 4,
      holdMaxMs: 3,
      slots: { name: `race.line(${RUN_ID})`, limit: 4, waitMs: 60_000 },
      ...(workerId === 0 ? { observeEveryMs: 2 } : {}),
    }));

    const totals = await race('4 processes x 4 callers waiting in line on 4 slots', configs);

    // Sixteen callers on four slots waited (statements beyond the first), and every wait ended with a slot.
    expect(totals.extraSlotAttempts).toBeGreaterThan(0);
    expect(totals.conflicts).toBe(0);
    expectSpecHeld(totals);
    for (const successes of totals.successesByWorker) expect(successes).toBeGreaterThan(0);
    expect(totals.slotUses).toHaveLength(4);
    for (const uses of totals.slotUses) expect(uses).toBeGreaterThan(totals.successes / 8);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  it('2 processes on 200-key sets sharing 100 keys, in opposite orders: all or nothing, no raw deadlock, nothing left', async () => {
    const first = Array.from({ length: 200 }, (_, i) => bigKey(i)); // big(0)..big(199)
    const second = Array.from({ length: 200 }, (_, i) => bigKey(299 - i)); // big(299)..big(100): shares big(100..199), reversed
    const configs: RaceWorkerConfig[] = [first, second].map((fixedKeys, workerId) => ({
      url,
      runId: RUN_ID,
      workerId,
      durationMs: BIG_SETS_DURATION_MS[engine.name],
      maxCycles: 2000,
      loops: 1,
      poolSize: 3,
      holdMaxMs: 3,
      fixedKeys,
      ...(workerId === 0 ? { observeEveryMs: 2 } : {}),
    }));

    const totals = await race('2 processes, 200-key sets sharing 100', configs);

    expect(totals.successes).toBeGreaterThan(0);
    expectSpecHeld(totals);
    expect(await lockRows(dataSource)).toEqual([]);
  });
});
