/**
 * Throughput benchmark: acquire+release cycles per second of drydock-slotlock, against
 * hand-written mysql2 code sending what Phorge sends, on the same server and table.
 *
 * Why: the package exists to take Drydock's slot locks from Node. It should cost no
 * more than the SQL Phorge itself runs (BEGIN, one multi-row INSERT, COMMIT, then a
 * DELETE by owner), and the distance to the cheapest possible client (the same INSERT
 * in autocommit, then the DELETE) shows what TypeORM and the service's checks cost.
 *
 * What: for K = 1 and 10 keys per set and C = 1 and 8 concurrent callers, each caller
 * with its own owner and disjoint keys (so nothing ever conflicts) loops over
 * "take the set, release it" for a fixed time slice. Three contenders:
 *   1. package       SlotLockService.acquireLocks(owner, keys) + releaseLocks(owner),
 *                    on a TypeORM DataSource (type 'mysql', poolSize >= C);
 *   2. raw tx        mysql2/promise pool: on one pooled connection BEGIN, INSERT … VALUES
 *                    (?, ?, ?), …, COMMIT; then DELETE … WHERE ownerPHID = ?;
 *   3. raw autocommit the same INSERT alone (autocommit), then the DELETE.
 * Both raw contenders use `query` (client-side interpolation, as TypeORM does), hash and
 * sort the keys per cycle with the package's digestForIndex (as the package does) and
 * take a pooled connection per cycle (as the package does).
 *
 * Disjoint keys do not mean no contention: under REPEATABLE READ the DELETE by owner
 * takes next-key locks on `key_owner`, including on the next owner's delete-marked
 * entries that purge has not removed yet, and that owner's next INSERT waits on them
 * with an insert-intention lock; with C = 8 this deadlocks a few times per thousand
 * cycles. The package retries deadlocks and lock-wait timeouts itself (with jittered
 * backoff); the raw contenders retry them at once, as the cheapest client would. A cycle
 * counts once, however many attempts it took. The contention errors each contender met
 * are counted client-side (for the package, by the DataSource's logger, which otherwise
 * logs nothing, as TypeORM's default one does with logging off), since the server's
 * Innodb_deadlocks also counts other clients'.
 *
 * Slices run interleaved (package, raw tx, raw autocommit, package, …) for several
 * rounds, so drift in the machine's speed hits every contender alike; each ratio is taken
 * within one round, and the table reports medians over rounds. The lock table is
 * truncated before every slice (so also between rounds), so that no contender starts on
 * a table another one has just churned. The target (package >= 1.0x raw tx) is
 * informative: the process exits 0 whether or not it is met.
 *
 * Run: `npm run bench`. Tunables (environment): SLOTLOCK_BENCH_MYSQL_URL (server, no
 * database part; default mysql://root@127.0.0.1:3306), BENCH_ROUNDS (3),
 * BENCH_SLICE_MS (1200), BENCH_WARMUP_MS (300).
 */
import 'reflect-metadata';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import mysql, { type Pool, type RowDataPacket } from 'mysql2/promise';
import { DataSource, type Logger } from 'typeorm';
import { DrydockSlotLock, SlotLockService, digestForIndex, slotLockMigrations } from '../src';

const SERVER_URL = process.env.SLOTLOCK_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
const DATABASE = 'slotlock_bench';
const TABLE = 'drydock_slotlock';

const KEY_COUNTS = [1, 10] as const;
const CALLER_COUNTS = [1, 8] as const;
const ROUNDS = positiveIntFromEnv('BENCH_ROUNDS', 3);
const SLICE_MS = positiveIntFromEnv('BENCH_SLICE_MS', 1200);
const WARMUP_MS = positiveIntFromEnv('BENCH_WARMUP_MS', 300);
const POOL_SIZE = Math.max(...CALLER_COUNTS);

/** The target: the package at least as fast as Phorge's own statements. */
const TARGET_RATIO = 1.0;

interface BenchCase {
  readonly keys: number;
  readonly callers: number;
}

/** One concurrent caller: its owner and its keys, disjoint from every other caller's. */
interface Caller {
  readonly owner: string;
  readonly keys: readonly string[];
}

/** Takes a caller's whole set of locks, then releases it. */
type Cycle = (caller: Caller) => Promise<void>;

/** Contention errors (deadlocks, lock-wait timeouts) a contender met, each retried. */
interface ContentionCount {
  errors: number;
}

interface Contender {
  readonly label: string;
  readonly cycle: Cycle;
  readonly contention: ContentionCount;
}

/** What one contender did in one time slice. */
interface SliceResult {
  readonly cyclesPerSecond: number;
  readonly cycles: number;
  /** Contention errors met (and retried) during the slice. */
  readonly contentionErrors: number;
}

/** One round: a slice of each contender, in contender order. */
type Round = readonly SliceResult[];

interface CaseResult {
  readonly benchCase: BenchCase;
  readonly rounds: readonly Round[];
}

interface Connections {
  readonly dataSource: DataSource;
  readonly pool: Pool;
  /** Contention errors met by the package's queries, counted by the DataSource's logger. */
  readonly packageContention: ContentionCount;
}

// --- setup -------------------------------------------------------------------------

function positiveIntFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/** ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the errors the package retries too. */
const CONTENTION_ERRNOS: ReadonlySet<number> = new Set([1213, 1205]);

function isContention(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' && CONTENTION_ERRNOS.has(errno);
}

/** Logs nothing; counts the contention errors TypeORM reports (it hands over the driver's error). */
class ContentionLogger implements Logger {
  constructor(private readonly count: ContentionCount) {}
  logQueryError(error: string | Error): void {
    if (isContention(error)) this.count.errors += 1;
  }
  logQuery(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}

async function recreateDatabase(): Promise<void> {
  const admin = await mysql.createConnection({ uri: SERVER_URL });
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``);
    await admin.query(`CREATE DATABASE \`${DATABASE}\``);
  } finally {
    await admin.end();
  }
}

/** The package's side: a DataSource on the bench database, migrated with the package's migrations. */
async function openDataSource(contention: ContentionCount): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'mysql',
    url: `${SERVER_URL}/${DATABASE}`,
    entities: [DrydockSlotLock],
    migrations: [...slotLockMigrations],
    poolSize: POOL_SIZE,
    logger: new ContentionLogger(contention),
  });
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

async function openConnections(): Promise<Connections> {
  await recreateDatabase();
  const packageContention: ContentionCount = { errors: 0 };
  const dataSource = await openDataSource(packageContention);
  const pool = mysql.createPool({ uri: `${SERVER_URL}/${DATABASE}`, connectionLimit: POOL_SIZE });
  return { dataSource, pool, packageContention };
}

async function closeConnections(connections: Connections | undefined): Promise<void> {
  if (connections === undefined) return;
  await Promise.allSettled([connections.pool.end(), connections.dataSource.destroy()]);
}

async function serverVersion(pool: Pool): Promise<string> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT VERSION() AS version');
  return String(rows[0]?.['version']);
}

// --- contenders --------------------------------------------------------------------

const MAX_RAW_ATTEMPTS = 100;

/** Retries `attempt` at once on contention (a raw client's simplest policy), counting each. */
async function retryOnContention(count: ContentionCount, attempt: () => Promise<unknown>): Promise<void> {
  for (let attempts = 1; ; attempts += 1) {
    try {
      await attempt();
      return;
    } catch (error) {
      if (!isContention(error) || attempts >= MAX_RAW_ATTEMPTS) throw error;
      count.errors += 1;
    }
  }
}

/** The multi-row INSERT Phorge sends, keys hashed and sorted by index as the package does. */
function insertStatement(caller: Caller): { sql: string; params: string[] } {
  const rows = caller.keys
    .map((lockKey) => ({ lockKey, lockIndex: digestForIndex(lockKey) }))
    .sort((a, b) => (a.lockIndex < b.lockIndex ? -1 : a.lockIndex > b.lockIndex ? 1 : 0));
  const params = rows.flatMap((row) => [caller.owner, row.lockIndex, row.lockKey]);
  const values = rows.map(() => '(?, ?, ?)').join(', ');
  return { sql: `INSERT INTO ${TABLE} (ownerPHID, lockIndex, lockKey) VALUES ${values}`, params };
}

const DELETE_SQL = `DELETE FROM ${TABLE} WHERE ownerPHID = ?`;

function packageContender(service: SlotLockService, contention: ContentionCount): Contender {
  return {
    label: 'package',
    contention,
    cycle: async (caller) => {
      await service.acquireLocks(caller.owner, caller.keys);
      await service.releaseLocks(caller.owner);
    },
  };
}

/** BEGIN, the INSERT, COMMIT on one pooled connection; ROLLBACK if any of them fails. */
async function insertInTransaction(pool: Pool, sql: string, params: string[]): Promise<void> {
  const connection = await pool.getConnection();
  try {
    await connection.query('BEGIN');
    await connection.query(sql, params);
    await connection.query('COMMIT');
  } catch (error) {
    await connection.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    connection.release();
  }
}

function rawTransactionContender(pool: Pool): Contender {
  const contention: ContentionCount = { errors: 0 };
  return {
    label: 'raw tx',
    contention,
    cycle: async (caller) => {
      const { sql, params } = insertStatement(caller);
      await retryOnContention(contention, () => insertInTransaction(pool, sql, params));
      await retryOnContention(contention, () => pool.query(DELETE_SQL, [caller.owner]));
    },
  };
}

function rawAutocommitContender(pool: Pool): Contender {
  const contention: ContentionCount = { errors: 0 };
  return {
    label: 'raw autocommit',
    contention,
    cycle: async (caller) => {
      const { sql, params } = insertStatement(caller);
      await retryOnContention(contention, () => pool.query(sql, params));
      await retryOnContention(contention, () => pool.query(DELETE_SQL, [caller.owner]));
    },
  };
}

// --- measuring ---------------------------------------------------------------------

function callersFor({ keys, callers }: BenchCase): Caller[] {
  return Array.from({ length: callers }, (_, caller) => ({
    owner: `PHID-BENCH-${caller}`,
    keys: Array.from({ length: keys }, (_, i) => `bench(${caller}).key(${i})`),
  }));
}

/** Runs every caller in a loop for `durationMs`; counts the cycles they completed. */
async function runSlice(contender: Contender, callers: readonly Caller[], durationMs: number): Promise<SliceResult> {
  const { cycle, contention } = contender;
  const errorsBefore = contention.errors;
  const start = performance.now();
  const deadline = start + durationMs;
  const counts = await Promise.all(
    callers.map(async (caller) => {
      let cycles = 0;
      while (performance.now() < deadline) {
        await cycle(caller);
        cycles += 1;
      }
      return cycles;
    }),
  );
  const elapsedSeconds = (performance.now() - start) / 1000;
  const cycles = counts.reduce((sum, count) => sum + count, 0);
  return { cyclesPerSecond: cycles / elapsedSeconds, cycles, contentionErrors: contention.errors - errorsBefore };
}

/** Every cycle releases what it took, so a row left over means a contender is broken. */
async function checkTableEmpty(pool: Pool): Promise<void> {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${TABLE}`);
  const left = Number(rows[0]?.['n']);
  if (left !== 0) throw new Error(`${left} lock rows left behind after a slice`);
}

async function runCase(
  benchCase: BenchCase,
  contenders: readonly Contender[],
  pool: Pool,
  onRound: (round: number, slices: Round) => void,
): Promise<CaseResult> {
  const callers = callersFor(benchCase);
  for (const contender of contenders) await runSlice(contender, callers, WARMUP_MS);
  const rounds: Round[] = [];
  for (let round = 1; round <= ROUNDS; round += 1) {
    const slices: SliceResult[] = [];
    for (const contender of contenders) {
      await pool.query(`TRUNCATE TABLE ${TABLE}`);
      slices.push(await runSlice(contender, callers, SLICE_MS));
      await checkTableEmpty(pool);
    }
    rounds.push(slices);
    onRound(round, slices);
  }
  return { benchCase, rounds };
}

// --- reporting ---------------------------------------------------------------------

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Median over rounds of contender `a`'s rate divided by contender `b`'s in the same round. */
function medianRatio(result: CaseResult, a: number, b: number): number {
  return median(result.rounds.map((round) => round[a]!.cyclesPerSecond / round[b]!.cyclesPerSecond));
}

function medianRate(result: CaseResult, contender: number): number {
  return median(result.rounds.map((round) => round[contender]!.cyclesPerSecond));
}

/** Contention errors (retried) per 1000 cycles of one contender, over all its rounds. */
function contentionPerThousand(result: CaseResult, contender: number): string {
  const slices = result.rounds.map((round) => round[contender]!);
  const errors = slices.reduce((sum, slice) => sum + slice.contentionErrors, 0);
  const cycles = slices.reduce((sum, slice) => sum + slice.cycles, 0);
  return ((1000 * errors) / Math.max(cycles, 1)).toFixed(1);
}

function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

function verdict(ratio: number): string {
  return ratio >= TARGET_RATIO ? 'met' : 'NOT met';
}

function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ');
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** Contender order in every round, as `runAll` builds the list. */
const PACKAGE = 0;
const RAW_TX = 1;
const RAW_AUTOCOMMIT = 2;

function resultRow(result: CaseResult): string[] {
  const { keys, callers } = result.benchCase;
  const vsTransaction = medianRatio(result, PACKAGE, RAW_TX);
  return [
    `K=${keys}, C=${callers}`,
    medianRate(result, PACKAGE).toFixed(0),
    medianRate(result, RAW_TX).toFixed(0),
    medianRate(result, RAW_AUTOCOMMIT).toFixed(0),
    formatRatio(vsTransaction),
    formatRatio(medianRatio(result, PACKAGE, RAW_AUTOCOMMIT)),
    verdict(vsTransaction),
    [PACKAGE, RAW_TX, RAW_AUTOCOMMIT].map((contender) => contentionPerThousand(result, contender)).join(' / '),
  ];
}

function report(results: readonly CaseResult[]): string {
  const header = [
    'case',
    'package/s',
    'raw tx/s',
    'raw autocommit/s',
    'pkg vs raw tx',
    'pkg vs raw autocommit',
    `target >= ${formatRatio(TARGET_RATIO)} raw tx`,
    'retried deadlocks/1k cycles (pkg / tx / auto)',
  ];
  return formatTable(header, results.map(resultRow));
}

function describeRun(version: string): string {
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown CPU';
  return (
    `Machine: ${cpu}, ${os.cpus().length} cores; MariaDB ${version}; Node ${process.version}. ` +
    `Ratios are medians over ${ROUNDS} interleaved rounds (${SLICE_MS} ms per contender per round), ` +
    'each taken within one round.'
  );
}

// --- main --------------------------------------------------------------------------

function benchCases(): BenchCase[] {
  return KEY_COUNTS.flatMap((keys) => CALLER_COUNTS.map((callers) => ({ keys, callers })));
}

/** Progress on stderr, with each round's rates so that the spread between rounds shows. */
function printRoundProgress(round: number, slices: Round): void {
  const rates = slices.map((slice) => slice.cyclesPerSecond.toFixed(0)).join(' / ');
  process.stderr.write(`  round ${round}: ${rates}`);
}

async function runAll(connections: Connections): Promise<CaseResult[]> {
  const { dataSource, pool, packageContention } = connections;
  // In the order of PACKAGE, RAW_TX and RAW_AUTOCOMMIT.
  const contenders = [
    packageContender(new SlotLockService(dataSource), packageContention),
    rawTransactionContender(pool),
    rawAutocommitContender(pool),
  ];
  const labels = contenders.map((contender) => contender.label).join(' / ');
  const results: CaseResult[] = [];
  for (const benchCase of benchCases()) {
    process.stderr.write(`K=${benchCase.keys}, C=${benchCase.callers}, cycles/s of ${labels}:`);
    results.push(await runCase(benchCase, contenders, pool, printRoundProgress));
    process.stderr.write('\n');
  }
  return results;
}

async function main(): Promise<void> {
  let connections: Connections | undefined;
  try {
    connections = await openConnections();
    console.log(describeRun(await serverVersion(connections.pool)));
    const started = performance.now();
    const results = await runAll(connections);
    console.log('Cycles/s are medians over rounds; one cycle = take every key of the set, then release it.');
    console.log('raw tx = BEGIN, INSERT, COMMIT, DELETE (what Phorge sends); raw autocommit = INSERT, DELETE.\n');
    console.log(report(results));
    console.log(`\nTarget "package >= ${formatRatio(TARGET_RATIO)} raw BEGIN/INSERT/COMMIT" is informative only.`);
    console.log(`Measured in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
  } finally {
    await closeConnections(connections);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
