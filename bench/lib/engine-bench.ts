/**
 * Package versus the raw driver sending the same statements, on each engine: the
 * quick bench (`npm run bench`) and the engines section of the full one.
 *
 * A cycle takes a caller's whole set of K keys and releases it; C callers run
 * concurrently, each with its own owner and disjoint keys, so nothing ever conflicts.
 * Slices of every contender run interleaved (see interleave.ts); the table is emptied
 * before every slice and checked empty after it.
 */
import { SlotLockService } from '../../src';
import { makeCallers, hashedRows } from './callers';
import { closedLoop, contentionPerThousand, type ContentionCount, type LoopResult } from './closed-loop';
import { countPackageRetries } from './package-retries';
import { SilentLogger } from './silent-logger';
import type { CycleContender } from './contender';
import {
  mysqlRowCount,
  mysqlVersion,
  openMysqlDataSource,
  openMysqlPool,
  recreateMysqlDatabase,
  truncateMysql,
} from './engines/mariadb';
import {
  openPgPool,
  openPostgresDataSource,
  postgresRowCount,
  postgresVersion,
  recreatePostgresDatabase,
  truncatePostgres,
} from './engines/postgres';
import {
  openRawSqlite,
  openSqliteDataSource,
  resetSqlite,
  sqliteRowCount,
  sqliteSynchronous,
  sqliteVersion,
  temporarySqliteFile,
} from './engines/sqlite';
import { formatCount, formatRatio, formatRatioNear } from './format';
import { interleave, type Arm } from './interleave';
import { packageContender } from './contenders/package';
import { mysqlRawAutocommitContender, mysqlRawTransactionContender } from './contenders/mysql-raw';
import { postgresRawContender } from './contenders/postgres-raw';
import { sqliteRawContender } from './contenders/sqlite-raw';
import { median, medianRatio } from './stats';
import { assertSameStatements, type Engine } from './statements';

/** The overhead target (issue 12, item 1): the package at least this fast as the raw driver sending its statements. */
export const ENGINE_TARGET_RATIO = 0.97;

export interface EngineBenchSettings {
  readonly keyCounts: readonly number[];
  readonly callerCounts: readonly number[];
  readonly rounds: number;
  readonly sliceMs: number;
  readonly warmupMs: number;
}

export interface EngineCaseResult {
  readonly keys: number;
  readonly callers: number;
  /** `rounds[round][contender]`, contenders in `EngineResult.contenders` order. */
  readonly rounds: readonly (readonly LoopResult[])[];
}

export interface EngineResult {
  readonly engine: Engine;
  readonly title: string;
  readonly version: string;
  /** Contender labels; the package is always first. */
  readonly contenders: readonly string[];
  /** Index of the raw driver sending the package's own statements (the target's baseline). */
  readonly sameStatements: number;
  /** Index of raw BEGIN/INSERT/COMMIT (MariaDB only). */
  readonly rawTransaction?: number;
  readonly notes: readonly string[];
  readonly cases: readonly EngineCaseResult[];
}

/** Progress lines on stderr, with each round's rates so that the spread between rounds shows. */
export type Progress = (text: string) => void;

interface EngineRig {
  readonly contenders: readonly CycleContender[];
  readonly reset: () => Promise<void>;
  readonly rowCount: () => Promise<number>;
  readonly close: () => Promise<void>;
}

async function runCases(
  prefix: string,
  rig: EngineRig,
  settings: EngineBenchSettings,
  progress: Progress,
): Promise<EngineCaseResult[]> {
  const results: EngineCaseResult[] = [];
  const labels = rig.contenders.map((contender) => contender.label).join(' / ');
  for (const keys of settings.keyCounts) {
    for (const callers of settings.callerCounts) {
      const set = makeCallers(prefix, keys, callers);
      const arms: Arm<LoopResult>[] = rig.contenders.map((contender) => ({
        label: contender.label,
        warmup: () => closedLoop(set, settings.warmupMs, contender.cycle, contender.contention),
        measure: () => closedLoop(set, settings.sliceMs, contender.cycle, contender.contention),
      }));
      progress(`  K=${keys}, C=${callers}, cycles/s of ${labels}:`);
      const rounds = await interleave(arms, {
        rounds: settings.rounds,
        beforeSlice: rig.reset,
        afterSlice: async () => {
          const left = await rig.rowCount();
          if (left !== 0) throw new Error(`${left} lock rows left behind after a slice`);
        },
        onRound: (_, slices) => progress(` ${slices.map((slice) => slice.cyclesPerSecond.toFixed(0)).join('/')}`),
      });
      progress('\n');
      results.push({ keys, callers, rounds });
    }
  }
  return results;
}

/** The package's retry counter, fed by its diagnostics channel until `stop`. */
function counted(): { count: ContentionCount; logger: SilentLogger; stop: () => void } {
  const count: ContentionCount = { errors: 0 };
  return { count, logger: new SilentLogger(), stop: countPackageRetries(count) };
}

function checkStatements(engine: Engine, settings: EngineBenchSettings): void {
  for (const keys of settings.keyCounts) assertSameStatements(engine, hashedRows(makeCallers('CHECK', keys, 1)[0]!));
}

export async function benchMariadb(settings: EngineBenchSettings, progress: Progress): Promise<EngineResult> {
  checkStatements('mariadb', settings);
  const poolSize = Math.max(...settings.callerCounts);
  await recreateMysqlDatabase();
  const { count, logger, stop } = counted();
  const dataSource = await openMysqlDataSource(poolSize, logger);
  const pool = openMysqlPool(poolSize);
  try {
    const version = await mysqlVersion(pool);
    progress(`MariaDB ${version}\n`);
    const rig: EngineRig = {
      // In the order of the indexes below: package, raw tx, raw autocommit.
      contenders: [
        packageContender(new SlotLockService(dataSource), count),
        mysqlRawTransactionContender(pool),
        mysqlRawAutocommitContender(pool),
      ],
      reset: () => truncateMysql(pool),
      rowCount: () => mysqlRowCount(pool),
      close: async () => undefined,
    };
    const cases = await runCases('BENCH', rig, settings, progress);
    return {
      engine: 'mariadb',
      title: `MariaDB ${version} (mysql2)`,
      version,
      contenders: rig.contenders.map((contender) => contender.label),
      sameStatements: 2,
      rawTransaction: 1,
      notes: [
        'raw autocommit = the statements the package sends (INSERT … VALUES, then DELETE by owner, each in autocommit); ' +
          'raw tx = BEGIN, the same INSERT, COMMIT, then the DELETE (what Phorge sends).',
        'Retried contention: deadlocks between the INSERTs and DELETEs of different owners: the duplicate check of an ' +
          'INSERT locks delete-marked index records and their neighbours, and under REPEATABLE READ the DELETE by owner ' +
          'takes next-key locks on key_owner (it reads through key_owner, FORCE INDEX, never by a table scan); the ' +
          'package retries with its jittered backoff, the raw contenders at once (after 3 attempts, with a pause of up ' +
          'to 2^n ms, at most 50 ms).',
      ],
      cases,
    };
  } finally {
    stop();
    await Promise.allSettled([pool.end(), dataSource.destroy()]);
  }
}

export async function benchPostgres(settings: EngineBenchSettings, progress: Progress): Promise<EngineResult> {
  checkStatements('postgres', settings);
  const poolSize = Math.max(...settings.callerCounts);
  await recreatePostgresDatabase();
  const { count, logger, stop } = counted();
  const dataSource = await openPostgresDataSource(poolSize, logger);
  const pool = openPgPool(poolSize);
  try {
    const version = await postgresVersion(pool);
    progress(`PostgreSQL ${version}\n`);
    const rig: EngineRig = {
      contenders: [packageContender(new SlotLockService(dataSource), count), postgresRawContender(pool)],
      reset: () => truncatePostgres(pool),
      rowCount: () => postgresRowCount(pool),
      close: async () => undefined,
    };
    const cases = await runCases('BENCH', rig, settings, progress);
    return {
      engine: 'postgres',
      title: `PostgreSQL ${version} (pg)`,
      version,
      contenders: rig.contenders.map((contender) => contender.label),
      sameStatements: 1,
      notes: [
        'raw pg = the statements the package sends, on a pg.Pool of the same size: INSERT … SELECT … FROM (VALUES …) ' +
          'WHERE NOT EXISTS (held) in autocommit, then DELETE by owner. The package runs the INSERT on a TypeORM ' +
          'query runner of its own (no BEGIN/COMMIT).',
      ],
      cases,
    };
  } finally {
    stop();
    await Promise.allSettled([pool.end(), dataSource.destroy()]);
  }
}

export async function benchSqlite(settings: EngineBenchSettings, progress: Progress): Promise<EngineResult> {
  checkStatements('sqlite', settings);
  const temporary = temporarySqliteFile();
  const { count, logger, stop } = counted();
  const dataSource = await openSqliteDataSource(temporary.file, logger);
  const db = openRawSqlite(temporary.file);
  try {
    const version = sqliteVersion(db);
    const packageSync = Number((await dataSource.query('PRAGMA synchronous'))[0]?.synchronous);
    const rawSync = sqliteSynchronous(db);
    if (packageSync !== rawSync) throw new Error(`PRAGMA synchronous differs: package ${packageSync}, raw ${rawSync}`);
    progress(`SQLite ${version} (synchronous=${rawSync})\n`);
    const rig: EngineRig = {
      contenders: [packageContender(new SlotLockService(dataSource), count), sqliteRawContender(db)],
      reset: async () => resetSqlite(db),
      rowCount: async () => sqliteRowCount(db),
      close: async () => undefined,
    };
    const cases = await runCases('BENCH', rig, settings, progress);
    return {
      engine: 'sqlite',
      title: `SQLite ${version} (better-sqlite3)`,
      version,
      contenders: rig.contenders.map((contender) => contender.label),
      sameStatements: 1,
      notes: [
        `A temporary file database in WAL mode, busy timeout 5 s, synchronous=${rawSync === 2 ? 'FULL' : rawSync === 1 ? 'NORMAL' : rawSync} on both sides.`,
        'C=8 means 8 async callers in one process sharing one connection: TypeORM gives every query runner the same ' +
          'connection, so the package runs its own work one unit at a time per DataSource; raw better-sqlite3 is ' +
          'synchronous, so its 8 callers take turns as well. C measures in-process queueing, not parallelism. ' +
          'Both sides yield between the INSERT and the DELETE of a cycle (the package because acquireLocks returns a ' +
          'promise; the raw side with an await), so the callers’ statements reach SQLite interleaved alike.',
      ],
      cases,
    };
  } finally {
    stop();
    await dataSource.destroy().catch(() => undefined);
    db.close();
    temporary.remove();
  }
}

// --- reporting ---------------------------------------------------------------------

function rate(result: EngineCaseResult, contender: number): number {
  return median(result.rounds.map((round) => round[contender]!.cyclesPerSecond));
}

function ratio(result: EngineCaseResult, a: number, b: number): number {
  return medianRatio(
    result.rounds,
    (round) => round[a]!.cyclesPerSecond,
    (round) => round[b]!.cyclesPerSecond,
  );
}

/** The lowest and highest per-round ratio, to show how far the rounds spread. */
function spread(result: EngineCaseResult, a: number, b: number): string {
  const ratios = result.rounds.map((round) => round[a]!.cyclesPerSecond / round[b]!.cyclesPerSecond);
  return `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`;
}

/** Median over rounds of the client CPU per cycle of one contender. */
function cpu(result: EngineCaseResult, contender: number): number {
  return median(result.rounds.map((round) => round[contender]!.cpuMicrosPerCycle));
}

export function verdict(value: number, target: number = ENGINE_TARGET_RATIO): string {
  return value >= target ? 'met' : 'NOT met';
}

/** Package / same-statements ratio of every case: what the target is about. */
export function targetRatios(result: EngineResult): number[] {
  return result.cases.map((item) => ratio(item, 0, result.sameStatements));
}

/** One table per engine: header and rows, for the terminal or for Markdown. */
export function engineTable(result: EngineResult): { header: string[]; rows: string[][] } {
  const same = result.contenders[result.sameStatements]!;
  const tx = result.rawTransaction;
  const header = [
    'case',
    'package/s',
    `${same}/s`,
    ...(tx === undefined ? [] : [`${result.contenders[tx]!}/s`]),
    `pkg vs ${same} (same statements; rounds' range)`,
    ...(tx === undefined ? [] : [`pkg vs ${result.contenders[tx]!}`]),
    `target >= ${formatRatio(ENGINE_TARGET_RATIO)}`,
    `client CPU µs/cycle (package / ${same})`,
    `retried contention/1k cycles (${result.contenders.join(' / ')})`,
  ];
  const rows = result.cases.map((item) => {
    const vsSame = ratio(item, 0, result.sameStatements);
    return [
      `K=${item.keys}, C=${item.callers}`,
      formatCount(rate(item, 0)),
      formatCount(rate(item, result.sameStatements)),
      ...(tx === undefined ? [] : [formatCount(rate(item, tx))]),
      `${formatRatioNear(vsSame, ENGINE_TARGET_RATIO)} (${spread(item, 0, result.sameStatements)})`,
      ...(tx === undefined ? [] : [formatRatio(ratio(item, 0, tx))]),
      verdict(vsSame),
      `${cpu(item, 0).toFixed(0)} / ${cpu(item, result.sameStatements).toFixed(0)}`,
      result.contenders
        .map((_, contender) => contentionPerThousand(item.rounds.map((round) => round[contender]!)).toFixed(1))
        .join(' / '),
    ];
  });
  return { header, rows };
}
