/**
 * Table size: acquisition latency of the package when 0, 100,000 or 1,000,000 locks are
 * already held. Three tables of the same DDL, filled once with raw multi-row INSERTs,
 * one SlotLockService per table; slices of the three run interleaved, so each ratio
 * against the empty table is taken within one round.
 */
import { performance } from 'node:perf_hooks';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { SlotLockService, digestForIndex } from '../../src';
import { SilentLogger } from '../lib/silent-logger';
import { TABLE } from '../lib/config';
import { openMysqlDataSource, openMysqlPool } from '../lib/engines/mariadb';
import { interleave, type Arm } from '../lib/interleave';
import { median, medianRatio, quantile } from '../lib/stats';

export interface TableSizeSettings {
  readonly sizes: readonly number[];
  readonly keyCounts: readonly number[];
  readonly rounds: number;
  readonly sliceMs: number;
  /** The bench database's URL; default: the single MariaDB server's. */
  readonly url?: string;
}

/** One slice: the latency of every acquisition and release, in milliseconds. */
export interface LatencySlice {
  readonly acquireMs: readonly number[];
  readonly releaseMs: readonly number[];
}

export interface TableSizeCase {
  readonly keys: number;
  /** `rounds[round][size]`, sizes in settings order. */
  readonly rounds: readonly (readonly LatencySlice[])[];
}

export interface TableSizeResult {
  readonly settings: TableSizeSettings;
  readonly fillSeconds: number;
  /** Data + index bytes of each table, as InnoDB reports them. */
  readonly tableBytes: readonly number[];
  readonly bufferPoolBytes: number;
  readonly cases: readonly TableSizeCase[];
}

/** Rows per filler INSERT: about 1 MB of SQL text. */
const FILL_CHUNK = 10_000;
/** Filler locks per owner: Drydock leases hold a handful each. */
const LOCKS_PER_OWNER = 10;

function tableFor(size: number): string {
  return `${TABLE}_${size}`;
}

/** Fills `table` with `count` filler rows, FILL_CHUNK per INSERT, two INSERTs in flight. */
async function fill(pool: Pool, table: string, count: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const start = next;
      const end = Math.min(start + FILL_CHUNK, count);
      next = end;
      const rows: string[][] = [];
      for (let i = start; i < end; i += 1) {
        const lockKey = `filler(${i})`;
        rows.push([`PHID-FILL-${Math.floor(i / LOCKS_PER_OWNER)}`, digestForIndex(lockKey), lockKey]);
      }
      await pool.query(`INSERT INTO \`${table}\` (ownerPHID, lockIndex, lockKey) VALUES ?`, [rows]);
    }
  };
  await Promise.all([worker(), worker()]);
}

async function createTables(pool: Pool, sizes: readonly number[], progress: (text: string) => void): Promise<number> {
  const started = performance.now();
  const sorted = [...sizes].sort((a, b) => b - a);
  for (const size of sorted) {
    await pool.query(`DROP TABLE IF EXISTS \`${tableFor(size)}\``);
    await pool.query(`CREATE TABLE \`${tableFor(size)}\` LIKE \`${TABLE}\``);
  }
  const largest = sorted[0]!;
  progress(`  filling ${largest.toLocaleString('en-US')} rows…`);
  await fill(pool, tableFor(largest), largest);
  // Smaller tables: a prefix of the largest, copied server-side.
  for (const size of sorted.slice(1)) {
    if (size === 0) continue;
    await pool.query(
      `INSERT INTO \`${tableFor(size)}\` (ownerPHID, lockIndex, lockKey) ` +
        `SELECT ownerPHID, lockIndex, lockKey FROM \`${tableFor(largest)}\` ORDER BY id LIMIT ${size}`,
    );
  }
  for (const size of sorted) await pool.query(`ANALYZE TABLE \`${tableFor(size)}\``);
  const seconds = (performance.now() - started) / 1000;
  progress(` ${seconds.toFixed(1)} s\n`);
  return seconds;
}

async function tableBytes(pool: Pool, table: string): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>(
    'SELECT data_length + index_length AS bytes FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?',
    [table],
  );
  return Number(rows[0]?.['bytes']);
}

async function rowCount(pool: Pool, table: string): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${table}\``);
  return Number(rows[0]?.['n']);
}

/** Acquire (timed), release (timed), fresh keys every time, for `sliceMs`. */
async function latencySlice(
  service: SlotLockService,
  keys: number,
  sliceMs: number,
  tag: string,
): Promise<LatencySlice> {
  const acquireMs: number[] = [];
  const releaseMs: number[] = [];
  const owner = `PHID-SIZE-${tag}`;
  const deadline = performance.now() + sliceMs;
  let serial = 0;
  while (performance.now() < deadline) {
    serial += 1;
    const lockKeys = Array.from({ length: keys }, (_, i) => `probe(${tag}).${serial}.${i}`);
    const t0 = performance.now();
    await service.acquireLocks(owner, lockKeys);
    const t1 = performance.now();
    await service.releaseLocks(owner);
    const t2 = performance.now();
    acquireMs.push(t1 - t0);
    releaseMs.push(t2 - t1);
  }
  return { acquireMs, releaseMs };
}

export async function benchTableSize(
  settings: TableSizeSettings,
  progress: (text: string) => void,
): Promise<TableSizeResult> {
  const dataSource = await openMysqlDataSource(2, new SilentLogger(), true, settings.url);
  const pool = openMysqlPool(2, settings.url);
  try {
    const fillSeconds = await createTables(pool, settings.sizes, progress);
    for (const size of settings.sizes) {
      const count = await rowCount(pool, tableFor(size));
      if (count !== size) throw new Error(`${tableFor(size)} holds ${count} rows, expected ${size}`);
    }
    const bytes = await Promise.all(settings.sizes.map((size) => tableBytes(pool, tableFor(size))));
    const [bufferPool] = await pool.query<RowDataPacket[]>('SELECT @@innodb_buffer_pool_size AS v');
    const services = settings.sizes.map((size) => new SlotLockService(dataSource, { tableName: tableFor(size) }));
    const cases: TableSizeCase[] = [];
    let generation = 0;
    for (const keys of settings.keyCounts) {
      const arms: Arm<LatencySlice>[] = settings.sizes.map((size, index) => ({
        label: `${size} held`,
        warmup: () => latencySlice(services[index]!, keys, 200, `${size}-${keys}-warm`),
        measure: () => latencySlice(services[index]!, keys, settings.sliceMs, `${size}-${keys}-${(generation += 1)}`),
      }));
      progress(`  K=${keys}, median acquire ms with ${settings.sizes.join(' / ')} held:`);
      const rounds = await interleave(arms, {
        rounds: settings.rounds,
        onRound: (_, slices) => progress(` ${slices.map((slice) => median(slice.acquireMs).toFixed(2)).join('/')}`),
      });
      progress('\n');
      cases.push({ keys, rounds });
    }
    for (const size of settings.sizes) {
      const count = await rowCount(pool, tableFor(size));
      if (count !== size) throw new Error(`${tableFor(size)} holds ${count} rows after the run, expected ${size}`);
    }
    return { settings, fillSeconds, tableBytes: bytes, bufferPoolBytes: Number(bufferPool[0]?.['v']), cases };
  } finally {
    // The filler tables are rebuilt by every run: do not leave them taking space on a shared server.
    for (const size of settings.sizes)
      await pool.query(`DROP TABLE IF EXISTS \`${tableFor(size)}\``).catch(() => undefined);
    await Promise.allSettled([pool.end(), dataSource.destroy()]);
  }
}

export interface SizeSummary {
  readonly size: number;
  /** Pooled over every round. */
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly releaseMedianMs: number;
  readonly samples: number;
  /** Median over rounds of (this size / empty table), for the median and the p99. */
  readonly medianRatio: number;
  readonly p99Ratio: number;
}

export function summarizeTableSize(result: TableSizeResult, item: TableSizeCase): SizeSummary[] {
  return result.settings.sizes.map((size, index) => {
    const acquire = item.rounds.flatMap((round) => round[index]!.acquireMs);
    const release = item.rounds.flatMap((round) => round[index]!.releaseMs);
    return {
      size,
      medianMs: median(acquire),
      p99Ms: quantile(acquire, 0.99),
      releaseMedianMs: median(release),
      samples: acquire.length,
      medianRatio: medianRatio(
        item.rounds,
        (round) => median(round[index]!.acquireMs),
        (round) => median(round[0]!.acquireMs),
      ),
      p99Ratio: medianRatio(
        item.rounds,
        (round) => quantile(round[index]!.acquireMs, 0.99),
        (round) => quantile(round[0]!.acquireMs, 0.99),
      ),
    };
  });
}
