/**
 * Full benchmark (`npm run bench:full`, a few minutes): peers and how cost grows, on
 * MariaDB, written to docs/benchmarks.md with SVG charts next to it (docs/bench-*.svg).
 *
 * Sections (bench/full/*.ts):
 *   peers       this package, raw mysql2 sending the same statements, MySQL named locks,
 *               node-redlock on Redis, and a literal TypeORM-repository port; K = 1, 10,
 *               100 keys, C = 1 and 8 callers;
 *   table-size  acquisition latency with 0, 100,000 and 1,000,000 locks already held;
 *   batch       locks/s for batches of 1 to 50,000 keys, and the peak memory of the
 *               largest ones (child processes);
 *   contention  N = 2, 8, 32 callers competing for acquireSlot on 4 slots;
 *   slots       acquireSlot latency against the family's limit (4 to 1,000,000), on
 *               MariaDB, PostgreSQL and SQLite;
 *   galera      the cycle on one server against a three-node Galera cluster (callers on
 *               one node or spread over three), and the table-size curve on the cluster
 *               (starts and stops scripts/galera.sh; needs galera-4 and rsync);
 *   fairness    callers that wait: 8 waiters on one key, and a 10-key set against a
 *               stream of one-key callers, each a process of its own, on MariaDB,
 *               PostgreSQL and SQLite (longest wait against the median; starvation).
 * `BENCH_SECTIONS=fairness npm run bench:full` runs that section alone and rewrites only
 * its part of docs/benchmarks.md (between its markers), keeping the other sections.
 * Every comparison is a ratio from one interleaved run (bench/lib/interleave.ts), the
 * median of several rounds.
 *
 * Tunables (environment): BENCH_SECTIONS (peers,table-size,batch,contention,slots,galera,fairness),
 * BENCH_SLOT_LIMITS (4,100,1000,10000,100000,1000000),
 * BENCH_OUT_DIR (docs), BENCH_FULL_ROUNDS (6), BENCH_FULL_SLICE_MS (500),
 * BENCH_FILL_ROWS (1000000: the largest table size), BENCH_FAIRNESS_MS (10000: each fairness
 * scenario's length), SLOTLOCK_BENCH_MYSQL_URL,
 * SLOTLOCK_BENCH_POSTGRES_URL, SLOTLOCK_BENCH_REDIS_URL.
 */
import 'reflect-metadata';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from 'pg';
import * as prettier from 'prettier';
import Redis from 'ioredis';
import { POSTGRES_SERVER_URL, REDIS_URL, positiveIntFromEnv } from './lib/config';
import { formatBytes, formatCount, formatRatio } from './lib/format';
import { mysqlVersion, openMysqlPool, recreateMysqlDatabase } from './lib/engines/mariadb';
import { describeMachine, machineLine } from './lib/machine';
import { benchBatchSize, heapGrowth, peakRssDelta, summarizeBatch } from './full/batch-size';
import { benchContention, contentionTarget, describeContentionTarget, summarizeContention } from './full/contention';
import {
  benchFairness,
  fairnessSection,
  spliceFairnessSection,
  summarizeOneKey,
  summarizeSetVsStream,
} from './full/fairness';
import { benchGalera, galeraRatio } from './full/galera';
import { benchPeers, peerRatio } from './full/peers';
import { CHART_FILES, TABLE_SIZE_TARGET, renderCharts, renderMarkdown, type FullResults } from './full/report';
import { benchSlotLimits, summarizeSlotLimits, type SlotEngine } from './full/slot-limits';
import { benchTableSize, summarizeTableSize } from './full/table-size';

const SECTIONS = ['peers', 'table-size', 'batch', 'contention', 'slots', 'galera', 'fairness'] as const;
type Section = (typeof SECTIONS)[number];

function sectionsFromEnv(): Set<Section> {
  const raw = process.env.BENCH_SECTIONS ?? SECTIONS.join(',');
  return new Set(
    raw.split(',').map((name) => {
      const section = name.trim() as Section;
      if (!SECTIONS.includes(section)) throw new RangeError(`BENCH_SECTIONS: unknown section "${name}"`);
      return section;
    }),
  );
}

const ROUNDS = positiveIntFromEnv('BENCH_FULL_ROUNDS', 6);
const SLICE_MS = positiveIntFromEnv('BENCH_FULL_SLICE_MS', 500);
const FILL_ROWS = positiveIntFromEnv('BENCH_FILL_ROWS', 1_000_000);
const FAIRNESS_MS = positiveIntFromEnv('BENCH_FAIRNESS_MS', 10_000);
const OUT_DIR = path.resolve(process.env.BENCH_OUT_DIR ?? path.join(__dirname, '..', 'docs'));
const SLOT_LIMITS = (process.env.BENCH_SLOT_LIMITS ?? '4,100,1000,10000,100000,1000000').split(',').map((value) => {
  const limit = Number(value);
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`BENCH_SLOT_LIMITS: not a limit: "${value}"`);
  return limit;
});
const SLOT_ENGINES: readonly SlotEngine[] = ['mariadb', 'postgres', 'sqlite'];

const progress = (text: string): void => {
  process.stderr.write(text);
};

async function postgresServerVersion(): Promise<string> {
  const client = new Client({ connectionString: `${POSTGRES_SERVER_URL}/postgres` });
  try {
    await client.connect();
    const result = await client.query<{ server_version: string }>('SHOW server_version');
    return String(result.rows[0]?.server_version);
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function redisServerVersion(): Promise<string> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown';
  } finally {
    redis.disconnect();
  }
}

function printHeadlines(results: FullResults): void {
  const lines: string[] = ['', 'Headline figures:'];
  if (results.peers !== undefined) {
    for (const item of results.peers.cases) {
      const ratios = results.peers.contenders
        .slice(1)
        .map((label, index) => `${label} ${formatRatio(peerRatio(item, index + 1))}`);
      lines.push(`  peers K=${item.keys}, C=${item.callers} (vs package): ${ratios.join(', ')}`);
    }
  }
  if (results.tableSize !== undefined) {
    for (const item of results.tableSize.cases) {
      const last = summarizeTableSize(results.tableSize, item).at(-1)!;
      lines.push(
        `  table size K=${item.keys}: ${formatCount(last.size)} held vs empty: median ${formatRatio(last.medianRatio)}, ` +
          `p99 ${formatRatio(last.p99Ratio)} (target <= ${formatRatio(TABLE_SIZE_TARGET)}: ` +
          `median ${last.medianRatio <= TABLE_SIZE_TARGET ? 'met' : 'NOT met'}, ` +
          `p99 ${last.p99Ratio <= TABLE_SIZE_TARGET ? 'met' : 'NOT met'})`,
      );
    }
  }
  if (results.batch !== undefined) {
    const shape = summarizeBatch(results.batch)
      .map((s) => `${formatCount(s.size)}: ${formatCount(s.acquireLocksPerSecond)}/s (${s.statements} INSERT)`)
      .join(', ');
    lines.push(`  batch locks/s: ${shape}`);
    for (const m of results.batch.memory) {
      const peak = peakRssDelta(m);
      const heap = heapGrowth(m);
      lines.push(
        `  batch memory ${formatCount(m.size)} keys (${formatBytes(m.keyBytes)} of keys): peak RSS ` +
          `+${formatBytes(peak.bytes)} (${peak.source}, ${(peak.bytes / m.keyBytes).toFixed(1)}x the key bytes), ` +
          `heap + external +${formatBytes(heap)} sampled (${(heap / m.keyBytes).toFixed(1)}x)`,
      );
    }
  }
  if (results.contention !== undefined) {
    for (const s of summarizeContention(results.contention)) {
      lines.push(
        `  contention N=${s.callers}: ${formatCount(s.acquisitionsPerSecond)} acq/s, ` +
          `failed attempts ${s.failedAttemptsPerAcquisition.toFixed(2)}/acq, rejections ` +
          `${s.rejectionsPerAcquisition.toFixed(2)}/acq, ` +
          `per slot ${s.perSlot.join('/')}, slot CV ${s.slotCv.toFixed(3)}`,
      );
    }
    lines.push(`  ${describeContentionTarget(contentionTarget(results.contention))}`);
  }
  if (results.slots !== undefined) {
    for (const engine of results.slots.engines) {
      const summary = summarizeSlotLimits(results.slots, engine);
      lines.push(
        `  slots on ${engine.engine}: ` +
          summary
            .map((s) => `limit ${formatCount(s.limit)} ${s.medianMs.toFixed(2)} ms (${formatRatio(s.vsSmallest)})`)
            .join(', '),
      );
    }
  }
  if (results.galera !== undefined) {
    for (const item of results.galera.cases)
      lines.push(
        `  galera K=${item.keys}, C=${item.callers} (vs 1 server): 1 node ${formatRatio(galeraRatio(item, 1))}, ` +
          `3 nodes ${formatRatio(galeraRatio(item, 2))}`,
      );
  }
  if (results.fairness !== undefined) {
    const { durationMs } = results.fairness.settings;
    for (const engine of results.fairness.engines) {
      const one = summarizeOneKey(engine);
      const set = summarizeSetVsStream(engine, durationMs);
      lines.push(
        `  fairness on ${engine.engine}: one key, wait median ${one.medianMs.toFixed(1)} ms, longest ` +
          `${one.maxMs.toFixed(0)} ms, per waiter ${one.perWaiter.join('/')}; the set got all its keys ` +
          `${set.set.acquisitions} times, longest wait ${set.set.maxMs.toFixed(0)} ms${set.starved ? ' (STARVED)' : ''}`,
      );
    }
  }
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  const sections = sectionsFromEnv();
  const machine = describeMachine();
  const started = performance.now();
  console.log(`Machine: ${machineLine(machine)}.`);
  await recreateMysqlDatabase();
  const pool = openMysqlPool(1);
  const mariadb = await mysqlVersion(pool).finally(() => pool.end());
  const versions = { mariadb, postgres: await postgresServerVersion(), redis: await redisServerVersion() };
  console.log(`MariaDB ${versions.mariadb}; PostgreSQL ${versions.postgres}; Redis ${versions.redis}.`);
  const base = { rounds: ROUNDS, sliceMs: SLICE_MS };

  let results: FullResults = { date: new Date(), machine, versions, seconds: 0 };
  if (sections.has('peers')) {
    progress('Peers (cycles/s: package / raw mysql2 / named locks / redlock / Phorge-literal port)\n');
    const peers = await benchPeers({ ...base, keyCounts: [1, 10, 100], callerCounts: [1, 8], warmupMs: 250 }, progress);
    results = { ...results, peers };
  }
  if (sections.has('contention')) {
    progress('Slot contention\n');
    const contention = await benchContention(
      // Twice the rounds: 32 and 8 callers both keep the four slots busy, and their ratio
      // (the slot target) moves 10 % from round to round.
      { ...base, rounds: 2 * ROUNDS, sliceMs: 2 * SLICE_MS, callerCounts: [2, 8, 32], slots: 4, holdMs: 2 },
      progress,
    );
    results = { ...results, contention };
  }
  if (sections.has('slots')) {
    progress('Slot families: acquireSlot latency against the limit\n');
    const slots = await benchSlotLimits(
      { engines: SLOT_ENGINES, limits: SLOT_LIMITS, fill: 0.75, rounds: ROUNDS, sliceMs: SLICE_MS },
      progress,
    );
    results = { ...results, slots };
  }
  if (sections.has('batch')) {
    progress('Batch size\n');
    const batch = await benchBatchSize(
      {
        rounds: Math.max(2, Math.round(ROUNDS / 2)),
        sliceMs: SLICE_MS,
        sizes: [1, 10, 100, 1000, 10_000, 50_000],
        keyBytes: 200,
        memorySizes: [10_000, 50_000],
      },
      progress,
    );
    results = { ...results, batch };
  }
  if (sections.has('table-size')) {
    progress('Table size\n');
    const sizes = [0, Math.round(FILL_ROWS / 10), FILL_ROWS];
    const tableSize = await benchTableSize({ ...base, sliceMs: 2 * SLICE_MS, keyCounts: [1, 10], sizes }, progress);
    results = { ...results, tableSize };
  }
  if (sections.has('galera')) {
    progress('Scale out: one server against a three-node Galera cluster\n');
    const sizes = [0, Math.round(FILL_ROWS / 10), FILL_ROWS];
    const galera = await benchGalera(
      {
        ...base,
        keyCounts: [1, 10, 100],
        callerCounts: [8, 24],
        warmupMs: 250,
        tableSize: { ...base, sliceMs: 2 * SLICE_MS, keyCounts: [1, 10], sizes },
      },
      progress,
    );
    results = { ...results, galera };
  }
  if (sections.has('fairness')) {
    progress('Fairness of waiting\n');
    const fairness = await benchFairness(
      {
        engines: SLOT_ENGINES,
        durationMs: FAIRNESS_MS,
        holdMs: 2,
        oneKeyWaiters: 8,
        setKeys: 10,
        streamCallers: 6,
      },
      progress,
    );
    results = { ...results, fairness };
  }
  results = { ...results, seconds: (performance.now() - started) / 1000 };

  mkdirSync(OUT_DIR, { recursive: true });
  const markdownFile = path.join(OUT_DIR, 'benchmarks.md');
  // Fairness alone: its part of the existing page is replaced, every other section's figures stay.
  const fairnessOnly = sections.size === 1 && results.fairness !== undefined;
  const markdown = fairnessOnly
    ? spliceFairnessSection(readFileSync(markdownFile, 'utf8'), fairnessSection(results.fairness!))
    : renderMarkdown(results);
  // Formatted as the repository's Prettier settings want it, so that `npm run lint` passes on it.
  const prettierOptions = (await prettier.resolveConfig(markdownFile)) ?? {};
  writeFileSync(markdownFile, await prettier.format(markdown, { ...prettierOptions, filepath: markdownFile }));
  for (const [file, svg] of Object.entries(renderCharts(results))) writeFileSync(path.join(OUT_DIR, file), svg);
  printHeadlines(results);
  console.log(
    `\nWrote ${path.relative(process.cwd(), path.join(OUT_DIR, 'benchmarks.md'))} and its charts ` +
      `(headline: ${CHART_FILES.peers}) in ${(results.seconds / 60).toFixed(1)} min.`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
