/**
 * Quick benchmark (`npm run bench`, about 90 s): acquire+release cycles per second of
 * drydock-slotlock against the raw driver sending the same statements, on MariaDB
 * (mysql2), PostgreSQL (pg) and SQLite (better-sqlite3).
 *
 * Why: the package should cost little more than the SQL it sends. The target is at
 * least 0.97x the raw driver sending the same statements in every case (printed as met
 * or NOT met; the process exits 0 either way). On MariaDB the table also keeps the
 * comparison with what Phorge sends (BEGIN, INSERT, COMMIT, then DELETE).
 *
 * What: K = 1 and 10 keys per set, C = 1 and 8 concurrent callers, each caller with its
 * own owner and disjoint keys. Contenders and statements: see bench/lib/engine-bench.ts
 * and bench/lib/statements.ts (the raw SQL is checked against the package's dialects at
 * startup). Databases: `slotlock_bench` on MariaDB and PostgreSQL (dropped and
 * created), a temporary file for SQLite (deleted afterwards).
 *
 * How: slices of every contender run interleaved, the order alternating (A, B, C, then
 * C, B, A), for several rounds; each ratio is taken within one round and the table
 * shows medians over rounds. Tunables (environment): BENCH_ROUNDS (8), BENCH_SLICE_MS
 * (300), BENCH_WARMUP_MS (200), BENCH_ENGINES (mariadb,postgres,sqlite),
 * SLOTLOCK_BENCH_MYSQL_URL, SLOTLOCK_BENCH_POSTGRES_URL (servers, no database part).
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { positiveIntFromEnv } from './lib/config';
import {
  ENGINE_TARGET_RATIO,
  benchMariadb,
  benchPostgres,
  benchSqlite,
  engineTable,
  targetRatios,
  type EngineBenchSettings,
  type EngineResult,
} from './lib/engine-bench';
import { formatRatio, formatRatioNear, textTable } from './lib/format';
import { describeMachine, machineLine } from './lib/machine';
import type { Engine } from './lib/statements';

const RUNNERS: Record<
  Engine,
  (settings: EngineBenchSettings, progress: (text: string) => void) => Promise<EngineResult>
> = {
  mariadb: benchMariadb,
  postgres: benchPostgres,
  sqlite: benchSqlite,
};

function enginesFromEnv(): Engine[] {
  const raw = process.env.BENCH_ENGINES ?? 'mariadb,postgres,sqlite';
  return raw.split(',').map((name) => {
    const engine = name.trim();
    if (!(engine in RUNNERS)) throw new RangeError(`BENCH_ENGINES: unknown engine "${engine}"`);
    return engine as Engine;
  });
}

export const QUICK_SETTINGS: EngineBenchSettings = {
  keyCounts: [1, 10],
  callerCounts: [1, 8],
  rounds: positiveIntFromEnv('BENCH_ROUNDS', 8),
  sliceMs: positiveIntFromEnv('BENCH_SLICE_MS', 300),
  warmupMs: positiveIntFromEnv('BENCH_WARMUP_MS', 200),
};

function printEngine(result: EngineResult): void {
  const { header, rows } = engineTable(result);
  console.log(`\n${result.title}`);
  console.log(textTable(header, rows));
  for (const note of result.notes) console.log(`  - ${note}`);
}

function printVerdict(results: readonly EngineResult[]): void {
  const missed: string[] = [];
  let total = 0;
  for (const result of results) {
    targetRatios(result).forEach((value, index) => {
      total += 1;
      const item = result.cases[index]!;
      if (value < ENGINE_TARGET_RATIO) {
        missed.push(
          `${result.engine} K=${item.keys}, C=${item.callers} (${formatRatioNear(value, ENGINE_TARGET_RATIO)})`,
        );
      }
    });
  }
  const met = total - missed.length;
  console.log(
    `\nTarget "package >= ${formatRatio(ENGINE_TARGET_RATIO)} the raw driver sending the same statements": ` +
      (missed.length === 0
        ? `met in all ${total} cases.`
        : `met in ${met} of ${total}; NOT met: ${missed.join('; ')}.`),
  );
}

async function main(): Promise<void> {
  const engines = enginesFromEnv();
  const settings = QUICK_SETTINGS;
  console.log(`Machine: ${machineLine(describeMachine())}.`);
  console.log(
    `Cycles/s are medians over ${settings.rounds} interleaved rounds (${settings.sliceMs} ms per contender per round, ` +
      'order alternating); each ratio is taken within one round, then the median over rounds. ' +
      'One cycle = take every key of the set, then release it.',
  );
  const started = performance.now();
  const results: EngineResult[] = [];
  for (const engine of engines) {
    results.push(await RUNNERS[engine](settings, (text) => process.stderr.write(text)));
  }
  for (const result of results) printEngine(result);
  printVerdict(results);
  console.log(`Measured in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
