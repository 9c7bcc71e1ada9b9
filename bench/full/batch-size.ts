/**
 * Batch size: locks per second of one acquireLocks of N keys (N = 1 … 50,000), and the
 * release of them all, single caller. Batch sizes run interleaved (every size once per
 * round). Keys are long enough that the larger batches cross the package's chunking
 * (statements of at most 128 KiB: several INSERTs in one transaction). The memory the
 * largest batches need is measured in a child process each (batch-memory-child.ts).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import type { RowDataPacket } from 'mysql2/promise';
import type { Logger } from 'typeorm';
import { SlotLockService } from '../../src';
import { openMysqlDataSource, openMysqlPool, truncateMysql } from '../lib/engines/mariadb';
import { interleave, type Arm } from '../lib/interleave';
import { median, medianRatio } from '../lib/stats';
import { batchKeys, batchOwner } from './batch-keys';
import type { MemoryMeasurement } from './batch-memory-child';

export interface BatchSettings {
  readonly sizes: readonly number[];
  /** Bytes of every key. */
  readonly keyBytes: number;
  readonly rounds: number;
  /** Repeat a size within a slice until this much time has passed (at least once). */
  readonly sliceMs: number;
  /** Sizes whose peak memory is measured, in a child process each. */
  readonly memorySizes: readonly number[];
}

export interface BatchSlice {
  readonly acquisitions: number;
  readonly acquireSeconds: number;
  readonly releaseSeconds: number;
  /** INSERT statements per acquisition (the package's chunking). */
  readonly statements: number;
}

export interface BatchResult {
  readonly settings: BatchSettings;
  readonly maxAllowedPacket: number;
  /** `rounds[round][size]`. */
  readonly rounds: readonly (readonly BatchSlice[])[];
  readonly memory: readonly MemoryMeasurement[];
}

/** Counts the INSERTs that go through a TypeORM query runner (the multi-statement path). */
class InsertCounter implements Logger {
  inserts = 0;
  logQuery(query: string): void {
    if (query.startsWith('INSERT')) this.inserts += 1;
  }
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

const execFileAsync = promisify(execFile);

async function measureMemory(size: number, keyBytes: number): Promise<MemoryMeasurement> {
  const child = path.join(__dirname, 'batch-memory-child.ts');
  const { stdout } = await execFileAsync(
    process.execPath,
    ['--expose-gc', '-r', 'ts-node/register/transpile-only', child, String(size), String(keyBytes)],
    { cwd: path.join(__dirname, '..', '..'), maxBuffer: 1024 * 1024 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as MemoryMeasurement;
}

export async function benchBatchSize(settings: BatchSettings, progress: (text: string) => void): Promise<BatchResult> {
  const counter = new InsertCounter();
  const dataSource = await openMysqlDataSource(2, counter);
  const pool = openMysqlPool(1);
  try {
    const [packet] = await pool.query<RowDataPacket[]>('SELECT @@max_allowed_packet AS v');
    const maxAllowedPacket = Number(packet[0]?.['v']);
    const service = new SlotLockService(dataSource);
    const arms: Arm<BatchSlice>[] = settings.sizes.map((size) => {
      const keys = batchKeys(size, settings.keyBytes, String(size));
      const owner = batchOwner(String(size));
      const slice = async (durationMs: number): Promise<BatchSlice> => {
        let acquisitions = 0;
        let acquireSeconds = 0;
        let releaseSeconds = 0;
        let statements = 0;
        const deadline = performance.now() + durationMs;
        do {
          const insertsBefore = counter.inserts;
          const t0 = performance.now();
          await service.acquireLocks(owner, keys);
          const t1 = performance.now();
          // The one-statement path bypasses the runner (and the logger): none counted means one.
          statements = Math.max(1, counter.inserts - insertsBefore);
          const released = await service.releaseLocks(owner);
          const t2 = performance.now();
          if (released !== size) throw new Error(`released ${released} of ${size}`);
          acquisitions += 1;
          acquireSeconds += (t1 - t0) / 1000;
          releaseSeconds += (t2 - t1) / 1000;
        } while (performance.now() < deadline);
        return { acquisitions, acquireSeconds, releaseSeconds, statements };
      };
      return { label: `${size} keys`, warmup: () => slice(0), measure: () => slice(settings.sliceMs) };
    });
    progress(`  locks/s acquired for batches of ${settings.sizes.join(' / ')}:`);
    const rounds = await interleave(arms, {
      rounds: settings.rounds,
      beforeSlice: () => truncateMysql(pool),
      onRound: (round, slices) =>
        progress(
          ` ${slices.map((slice, index) => ((slice.acquisitions * settings.sizes[index]!) / slice.acquireSeconds).toFixed(0)).join('/')}`,
        ),
    });
    progress('\n');
    const memory: MemoryMeasurement[] = [];
    for (const size of settings.memorySizes) {
      progress(`  memory of a ${size}-key batch (child process)…`);
      memory.push(await measureMemory(size, settings.keyBytes));
      progress(' done\n');
    }
    return { settings, maxAllowedPacket, rounds, memory };
  } finally {
    await Promise.allSettled([pool.end(), dataSource.destroy()]);
  }
}

export interface BatchSummary {
  readonly size: number;
  readonly statements: number;
  readonly acquireLocksPerSecond: number;
  readonly releaseLocksPerSecond: number;
  readonly acquireMs: number;
  /** Median over rounds of (locks/s at this size) / (locks/s at 1 key), within each round. */
  readonly vsSingle: number;
}

export function summarizeBatch(result: BatchResult): BatchSummary[] {
  const perSecond = (slice: BatchSlice, size: number, seconds: number): number => (slice.acquisitions * size) / seconds;
  return result.settings.sizes.map((size, index) => ({
    size,
    statements: result.rounds[result.rounds.length - 1]![index]!.statements,
    acquireLocksPerSecond: median(
      result.rounds.map((round) => perSecond(round[index]!, size, round[index]!.acquireSeconds)),
    ),
    releaseLocksPerSecond: median(
      result.rounds.map((round) => perSecond(round[index]!, size, round[index]!.releaseSeconds)),
    ),
    acquireMs: median(result.rounds.map((round) => (1000 * round[index]!.acquireSeconds) / round[index]!.acquisitions)),
    vsSingle: medianRatio(
      result.rounds,
      (round) => perSecond(round[index]!, size, round[index]!.acquireSeconds),
      (round) => perSecond(round[0]!, result.settings.sizes[0]!, round[0]!.acquireSeconds),
    ),
  }));
}

/** Sampled peak growth of the JavaScript heap plus external memory (buffers) above the baseline. */
export function heapGrowth(measurement: MemoryMeasurement): number {
  return measurement.sampledPeakHeapUsed - measurement.baselineHeapUsed + measurement.sampledPeakExternal;
}

/** The batch's peak memory above the baseline: maxRSS when the batch raised it, else the sampled peak. */
export function peakRssDelta(measurement: MemoryMeasurement): { bytes: number; source: 'maxRSS' | 'sampled' } {
  if (measurement.maxRssAfter > measurement.maxRssBefore && measurement.maxRssAfter >= measurement.sampledPeakRss) {
    return { bytes: measurement.maxRssAfter - measurement.baselineRss, source: 'maxRSS' };
  }
  return { bytes: Math.max(0, measurement.sampledPeakRss - measurement.baselineRss), source: 'sampled' };
}
