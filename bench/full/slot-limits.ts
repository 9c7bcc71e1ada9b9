/**
 * Slot families at the seed's hard case (issue 13): the latency of one `acquireSlot` as
 * the family's limit grows from 4 to 1,000,000, the family filled alike (a random
 * FILL of its slots held by others), one caller, on MariaDB, PostgreSQL and SQLite.
 *
 * Each limit is its own family in one table per engine, filled once before measuring
 * (the package's own chunked acquisitions). A slice is back-to-back cycles of
 * `acquireSlot` (timed) and `releaseLocks` (not timed) for `sliceMs`; the limits run
 * interleaved, several rounds. The ratio against limit 4 is the median of per-round
 * ratios of the medians.
 */
import { performance } from 'node:perf_hooks';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { MYSQL_SERVER_URL, POSTGRES_SERVER_URL } from '../lib/config';
import { temporarySqliteFile } from '../lib/engines/sqlite';
import { interleave, type Arm } from '../lib/interleave';
import { SilentLogger } from '../lib/silent-logger';
import { median, medianRatio, quantile } from '../lib/stats';

export type SlotEngine = 'mariadb' | 'postgres' | 'sqlite';

export interface SlotLimitsSettings {
  readonly engines: readonly SlotEngine[];
  readonly limits: readonly number[];
  /** Share of each family held before measuring (0.75: three of four). */
  readonly fill: number;
  readonly rounds: number;
  readonly sliceMs: number;
}

/** One slice: the acquireSlot latencies, in milliseconds, and the statements they took. */
export interface SlotLimitsSlice {
  readonly latenciesMs: readonly number[];
  readonly attempts: number;
}

export interface SlotLimitsEngineResult {
  readonly engine: SlotEngine;
  /** Seconds it took to fill every family. */
  readonly fillSeconds: number;
  /** `rounds[round][limitIndex]`. */
  readonly rounds: readonly (readonly SlotLimitsSlice[])[];
}

export interface SlotLimitsResult {
  readonly settings: SlotLimitsSettings;
  readonly engines: readonly SlotLimitsEngineResult[];
}

/** Databases of their own, so that this section never meets another bench's tables. */
const DATABASE = 'slotlock_bench_slots';

function familyName(limit: number): string {
  return `bench.slots(${limit})`;
}

async function openEngine(engine: SlotEngine): Promise<{ dataSource: DataSource; dispose: () => Promise<void> }> {
  let url: string;
  let dispose = async (): Promise<void> => undefined;
  if (engine === 'sqlite') {
    const temporary = temporarySqliteFile();
    url = `sqlite://${temporary.file}`;
    dispose = async () => temporary.remove();
  } else {
    const server = engine === 'mariadb' ? MYSQL_SERVER_URL : POSTGRES_SERVER_URL;
    const admin = new DataSource({
      ...dataSourceOptionsFromUrl(`${server}/${engine === 'mariadb' ? 'mysql' : 'postgres'}`),
      migrations: [],
    } as DataSourceOptions);
    await admin.initialize();
    try {
      if (engine === 'mariadb') {
        await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
        await admin.query(`CREATE DATABASE \`${DATABASE}\``);
      } else {
        await admin.query(`DROP DATABASE IF EXISTS "${DATABASE}" WITH (FORCE)`);
        await admin.query(`CREATE DATABASE "${DATABASE}"`);
      }
    } finally {
      await admin.destroy();
    }
    url = `${server}/${DATABASE}`;
  }
  const dataSource = new DataSource({
    ...dataSourceOptionsFromUrl(url),
    logger: new SilentLogger(),
  } as DataSourceOptions);
  await dataSource.initialize();
  await dataSource.runMigrations();
  return {
    dataSource,
    dispose: async () => {
      await dataSource.destroy();
      await dispose();
    },
  };
}

/** Holds a random `fill` share of the family's slots (exactly, for small families), 20,000 keys per owner. */
async function fillFamily(service: SlotLockService, limit: number, fill: number): Promise<void> {
  const held: string[] = [];
  const flush = async (): Promise<void> => {
    if (held.length === 0) return;
    await service.acquireLocks(`PHID-FILL-${limit}-${Math.random().toString(36).slice(2)}`, held.splice(0));
  };
  if (limit <= 1000) {
    const slots = Array.from({ length: limit }, (_, slot) => slot).sort(() => Math.random() - 0.5);
    for (const slot of slots.slice(0, Math.floor(limit * fill))) held.push(`${familyName(limit)}.slot(${slot})`);
  } else {
    for (let slot = 0; slot < limit; slot += 1) {
      if (Math.random() < fill) held.push(`${familyName(limit)}.slot(${slot})`);
      if (held.length >= 20_000) await flush();
    }
  }
  await flush();
}

async function slice(service: SlotLockService, limit: number, durationMs: number): Promise<SlotLimitsSlice> {
  const latenciesMs: number[] = [];
  let attempts = 0;
  const owner = `PHID-SLOT-${limit}`;
  const deadline = performance.now() + durationMs;
  while (performance.now() < deadline) {
    const started = performance.now();
    const taken = await service.acquireSlot(owner, familyName(limit), limit);
    latenciesMs.push(performance.now() - started);
    attempts += taken.attempts;
    await service.releaseLocks(owner);
  }
  return { latenciesMs, attempts };
}

export async function benchSlotLimits(
  settings: SlotLimitsSettings,
  progress: (text: string) => void,
): Promise<SlotLimitsResult> {
  const engines: SlotLimitsEngineResult[] = [];
  for (const engine of settings.engines) {
    const { dataSource, dispose } = await openEngine(engine);
    try {
      const service = new SlotLockService(dataSource);
      progress(`  ${engine}: filling ${settings.limits.length} families to ${settings.fill * 100} %…`);
      const fillStarted = performance.now();
      for (const limit of settings.limits) await fillFamily(service, limit, settings.fill);
      const fillSeconds = (performance.now() - fillStarted) / 1000;
      progress(` ${fillSeconds.toFixed(0)} s; median ms per limit:`);
      const arms: Arm<SlotLimitsSlice>[] = settings.limits.map((limit) => ({
        label: `limit ${limit}`,
        warmup: () => slice(service, limit, 200),
        measure: () => slice(service, limit, settings.sliceMs),
      }));
      const rounds = await interleave(arms, {
        rounds: settings.rounds,
        onRound: (_, slices) => progress(` ${slices.map((s) => median(s.latenciesMs).toFixed(2)).join('/')}`),
      });
      progress('\n');
      await service.close();
      engines.push({ engine, fillSeconds, rounds });
    } finally {
      await dispose();
    }
  }
  return { settings, engines };
}

export interface SlotLimitSummary {
  readonly limit: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  /** Median over rounds of (median at this limit) / (median at the smallest limit). */
  readonly vsSmallest: number;
  /** Statements per acquisition. */
  readonly attemptsPerAcquisition: number;
  readonly samples: number;
}

export function summarizeSlotLimits(result: SlotLimitsResult, engine: SlotLimitsEngineResult): SlotLimitSummary[] {
  return result.settings.limits.map((limit, index) => {
    const latencies = engine.rounds.flatMap((round) => round[index]!.latenciesMs);
    const attempts = engine.rounds.reduce((total, round) => total + round[index]!.attempts, 0);
    return {
      limit,
      medianMs: median(latencies),
      p99Ms: quantile(latencies, 0.99),
      vsSmallest: medianRatio(
        engine.rounds,
        (round) => median(round[index]!.latenciesMs),
        (round) => median(round[0]!.latenciesMs),
      ),
      attemptsPerAcquisition: attempts / Math.max(latencies.length, 1),
      samples: latencies.length,
    };
  });
}
