/**
 * Fairness of waiting (issue 11, item 4): how long callers that wait (`waitMs`) wait,
 * and whether anyone starves, on MariaDB, PostgreSQL (woken by NOTIFY) and SQLite.
 *
 * - One key, W waiters: W processes, each looping acquire (waiting) → hold HOLD_MS →
 *   release on the same key for the whole run. Reported: every acquisition's wait
 *   (median, p99, max) and how many acquisitions each waiter got.
 * - A set against a stream: one process waits for all of K keys (acquire → hold →
 *   release, again and again), while S processes each loop on one random key of the K
 *   (waiting too). Reported: the set's longest wait against its median, and how many
 *   times it got all K; the stream's waits beside it.
 *
 * Every caller is an OS process of its own (this file, run with `--child`), so that
 * the waiters poll and wake as separate apps would; each waits with `waitMs: Infinity`
 * and a signal that aborts at the end of the run. A wait still unfinished then counts
 * as a wait of its age so far: a caller that starves shows as its longest wait.
 */
import 'reflect-metadata';
import { spawn } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { DEFAULT_WAIT, SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { MYSQL_SERVER_URL, POSTGRES_SERVER_URL } from '../lib/config';
import { temporarySqliteFile } from '../lib/engines/sqlite';
import { formatCount, formatMs, formatRatio, markdownTable } from '../lib/format';
import { SilentLogger } from '../lib/silent-logger';
import { coefficientOfVariation, median, quantile, sum } from '../lib/stats';

export type FairnessEngine = 'mariadb' | 'postgres' | 'sqlite';

export interface FairnessSettings {
  readonly engines: readonly FairnessEngine[];
  /** How long each scenario runs, in milliseconds. */
  readonly durationMs: number;
  /** How long a caller holds what it got, in milliseconds. */
  readonly holdMs: number;
  /** Waiters on the one key. */
  readonly oneKeyWaiters: number;
  /** Keys of the set, and one-key callers streaming over them. */
  readonly setKeys: number;
  readonly streamCallers: number;
}

/** What one caller process saw. */
export interface CallerResult {
  readonly role: Role;
  readonly index: number;
  /** Each finished wait, in milliseconds, in order. */
  readonly waitsMs: readonly number[];
  /** The wait in progress when the run ended, if one was, and its age then. */
  readonly unfinishedMs: number | null;
}

/** One scenario's run: how long, what each caller saw, and (PostgreSQL) the connections opened meanwhile. */
export interface ScenarioRun {
  readonly seconds: number;
  readonly callers: readonly CallerResult[];
  /** PostgreSQL: sessions the server established during the run (pg_stat_database), e.g. listening connections. */
  readonly connectionsOpened?: number;
}

export interface FairnessEngineResult {
  readonly engine: FairnessEngine;
  readonly oneKey: ScenarioRun;
  readonly setVsStream: ScenarioRun;
}

export interface FairnessResult {
  readonly date: string;
  /** Load average over the last minute when the section started. */
  readonly loadAverage: number;
  readonly settings: FairnessSettings;
  readonly wait: { readonly baseDelayMs: number; readonly maxDelayMs: number };
  readonly engines: readonly FairnessEngineResult[];
}

type Role = 'one-key' | 'set' | 'stream';

interface ChildConfig {
  readonly url: string;
  readonly role: Role;
  readonly index: number;
  readonly keys: readonly string[];
  readonly durationMs: number;
  readonly holdMs: number;
}

const CHILD_ENV = 'SLOTLOCK_FAIRNESS_CHILD';
const DATABASE = 'slotlock_bench_fairness';
const ONE_KEY = 'bench.fair(one)';
const setKey = (i: number): string => `bench.fair.set(${i})`;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- parent --------------------------------------------------------------------------

/** A fresh database of this section's own on `engine`, migrated (locks and sessions). */
async function openEngine(
  engine: FairnessEngine,
): Promise<{ url: string; dataSource: DataSource; dispose: () => Promise<void> }> {
  let url: string;
  let removeFile = (): void => undefined;
  if (engine === 'sqlite') {
    const temporary = temporarySqliteFile();
    url = `sqlite://${temporary.file}`;
    removeFile = temporary.remove;
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
    url,
    dataSource,
    dispose: async () => {
      await dataSource.destroy();
      removeFile();
    },
  };
}

/**
 * Starts one process per config, lets them all connect, starts them at once and
 * resolves to what each saw.
 */
async function runCallers(configs: readonly ChildConfig[], connections?: () => Promise<number>): Promise<ScenarioRun> {
  const children = configs.map((config) => {
    const child = spawn(process.execPath, ['-r', require.resolve('ts-node/register/transpile-only'), __filename], {
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', [CHILD_ENV]: JSON.stringify(config) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    child.stdin.on('error', () => undefined);
    const lines = createInterface({ input: child.stdout });
    let ready: () => void = () => undefined;
    const isReady = new Promise<void>((resolve) => (ready = resolve));
    const result = new Promise<CallerResult>((resolve, reject) => {
      let last = '';
      lines.on('line', (line) => {
        if (line === 'ready') ready();
        else if (line.trim() !== '') last = line;
      });
      child.once('close', (code, signal) => {
        if (code !== 0) reject(new Error(`fairness caller ${config.role} ${config.index} exited ${code ?? signal}`));
        else resolve(JSON.parse(last) as CallerResult);
      });
    });
    // A child that dies before it is ready must not leave the others waiting for it.
    void result.catch(() => ready());
    return { child, isReady, result };
  });
  try {
    await Promise.all(children.map((each) => each.isReady));
    // The children's own connections are counted before the start (a backend reports its start within a second).
    let before: number | undefined;
    if (connections !== undefined) {
      await sleep(1500);
      before = await connections();
    }
    const started = performance.now();
    for (const { child } of children) child.stdin.end('go\n');
    const callers = await Promise.all(children.map((each) => each.result));
    const seconds = (performance.now() - started) / 1000;
    if (connections === undefined || before === undefined) return { seconds, callers };
    await sleep(1500);
    return { seconds, callers, connectionsOpened: (await connections()) - before };
  } finally {
    for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

export async function benchFairness(
  settings: FairnessSettings,
  progress: (text: string) => void,
): Promise<FairnessResult> {
  const engines: FairnessEngineResult[] = [];
  const loadAverage = os.loadavg()[0]!;
  for (const engine of settings.engines) {
    const { url, dataSource, dispose } = await openEngine(engine);
    const connections =
      engine === 'postgres'
        ? async (): Promise<number> => {
            const rows = (await dataSource.query(
              'SELECT sessions FROM pg_stat_database WHERE datname = current_database()',
            )) as Array<{ sessions: string }>;
            return Number(rows[0]!.sessions);
          }
        : undefined;
    try {
      const base = { url, durationMs: settings.durationMs, holdMs: settings.holdMs };
      progress(`  ${engine}: ${settings.oneKeyWaiters} waiters on one key`);
      const oneKey = await runCallers(
        Array.from({ length: settings.oneKeyWaiters }, (_, index) => ({
          ...base,
          role: 'one-key' as const,
          index,
          keys: [ONE_KEY],
        })),
        connections,
      );
      progress(` ${formatCount(sum(oneKey.callers.map((c) => c.waitsMs.length)))} acquisitions;`);
      await dataSource.query('DELETE FROM drydock_slotlock');
      progress(` a ${settings.setKeys}-key set against ${settings.streamCallers} one-key callers`);
      const keys = Array.from({ length: settings.setKeys }, (_, i) => setKey(i));
      const setVsStream = await runCallers(
        [
          { ...base, role: 'set', index: 0, keys },
          ...Array.from({ length: settings.streamCallers }, (_, index) => ({
            ...base,
            role: 'stream' as const,
            index,
            keys,
          })),
        ],
        connections,
      );
      progress(` the set got all ${settings.setKeys} ${setVsStream.callers[0]!.waitsMs.length} times\n`);
      engines.push({ engine, oneKey, setVsStream });
    } finally {
      await dispose();
    }
  }
  return { date: new Date().toISOString(), loadAverage, settings, wait: { ...DEFAULT_WAIT }, engines };
}

// --- summaries -----------------------------------------------------------------------

export interface WaitSummary {
  readonly acquisitions: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  /** The longest wait, counting a wait unfinished at the end at its age then. */
  readonly maxMs: number;
  /** True when the longest wait is one that never finished. */
  readonly maxUnfinished: boolean;
}

function summarizeWaits(callers: readonly CallerResult[]): WaitSummary {
  const waits = callers.flatMap((caller) => caller.waitsMs);
  const finishedMax = waits.length === 0 ? 0 : Math.max(...waits);
  const unfinishedMax = Math.max(0, ...callers.map((caller) => caller.unfinishedMs ?? 0));
  return {
    acquisitions: waits.length,
    medianMs: waits.length === 0 ? Number.NaN : median(waits),
    p99Ms: waits.length === 0 ? Number.NaN : quantile(waits, 0.99),
    maxMs: Math.max(finishedMax, unfinishedMax),
    maxUnfinished: unfinishedMax > finishedMax,
  };
}

export interface OneKeySummary extends WaitSummary {
  readonly engine: FairnessEngine;
  readonly perWaiter: readonly number[];
  readonly perWaiterCv: number;
}

export function summarizeOneKey(result: FairnessEngineResult): OneKeySummary {
  const perWaiter = result.oneKey.callers.map((caller) => caller.waitsMs.length);
  return {
    engine: result.engine,
    ...summarizeWaits(result.oneKey.callers),
    perWaiter,
    perWaiterCv: coefficientOfVariation(perWaiter),
  };
}

export interface SetVsStreamSummary {
  readonly engine: FairnessEngine;
  readonly seconds: number;
  readonly set: WaitSummary;
  readonly stream: WaitSummary;
  /** The set never got its keys, or waited at least half the run once. */
  readonly starved: boolean;
}

export function summarizeSetVsStream(result: FairnessEngineResult, durationMs: number): SetVsStreamSummary {
  const set = summarizeWaits(result.setVsStream.callers.filter((caller) => caller.role === 'set'));
  return {
    engine: result.engine,
    seconds: result.setVsStream.seconds,
    set,
    stream: summarizeWaits(result.setVsStream.callers.filter((caller) => caller.role === 'stream')),
    starved: set.acquisitions === 0 || set.maxMs >= durationMs / 2,
  };
}

// --- report ----------------------------------------------------------------------------

export const FAIRNESS_BEGIN =
  '<!-- bench:fairness:begin (BENCH_SECTIONS=fairness npm run bench:full rewrites this part alone) -->';
export const FAIRNESS_END = '<!-- bench:fairness:end -->';

const ms = (value: number): string => (Number.isNaN(value) ? '-' : formatMs(value));
const longest = (summary: WaitSummary): string =>
  `${ms(summary.maxMs)}${summary.maxUnfinished ? ' (still waiting at the end)' : ''}`;
const ratio = (summary: WaitSummary): string => {
  if (summary.acquisitions === 0 || summary.medianMs === 0) return '-';
  const value = summary.maxMs / summary.medianMs;
  return value >= 100 ? `${formatCount(value)}x` : formatRatio(value);
};
const howLong = (waitMs: number): string => (waitMs >= 1000 ? `${(waitMs / 1000).toFixed(1)} s` : `${ms(waitMs)} ms`);
const engineLabel = (engine: FairnessEngine): string => (engine === 'postgres' ? 'postgres (NOTIFY)' : engine);

/** What the set-against-stream table says, engine by engine, and what starvation would take to fix. */
function setVsStreamText(result: FairnessResult, summaries: readonly SetVsStreamSummary[]): string {
  const { setKeys, durationMs } = result.settings;
  const seconds = durationMs / 1000;
  const each = summaries.map((s) => {
    const got =
      s.set.acquisitions === 0
        ? `never got all ${setKeys} keys in ${seconds} s`
        : `got all ${setKeys} keys ${s.set.acquisitions} times in ${seconds} s, its longest wait ` +
          `${howLong(s.set.maxMs)}${s.set.maxUnfinished ? ', still waiting at the end' : ''}`;
    return `${engineLabel(s.engine)} ${got}${s.starved ? ': **starved**' : ''}`;
  });
  const starved = summaries.filter((s) => s.starved);
  const againstStream = summaries
    .filter((s) => s.stream.maxMs > 0)
    .map((s) => Math.round(s.set.maxMs / s.stream.maxMs));
  const comparison =
    againstStream.length === 0
      ? ''
      : ` The set’s longest wait was ${Math.min(...againstStream)}x to ${Math.max(...againstStream)}x the one-key ` +
        'callers’ longest, engine by engine.';
  const verdict =
    starved.length === 0
      ? 'It did not starve in this run (it got its keys, and no wait of it lasted half the run).'
      : `**The set starves** on ${starved.map((s) => engineLabel(s.engine)).join(', ')} (starving: it never got ` +
        'its keys, or one of its waits lasted half the run or more); the figures move a lot from run to run, as ' +
        'the set’s turn hangs on rare moments when all its keys happen to be free.';
  return (
    `${each.join('; ')}.${comparison} ${verdict} Waiting is not queued: a waiter only retries the all-or-nothing INSERT, ` +
    'and it succeeds only at a moment when every one of its keys is free at once, which a steady stream of ' +
    'one-key callers (each key free again within milliseconds, but some key held nearly always) seldom leaves. ' +
    'A wake-up on release (NOTIFY) makes the set try sooner after each release, but it still needs all its keys ' +
    'free at that moment. What would fix it: a queue (a ticket table: each waiter writes a ticket per key, and ' +
    'an acquisition yields to an older ticket on any of its keys), or a reservation written before waiting (the ' +
    'set takes the keys it can get and holds them, in key order so that two sets cannot deadlock, while it waits ' +
    'for the rest), which trades the set’s starvation for the one-key callers’ waits. Until then, take a large ' +
    'set in smaller units, or make one-key callers pause while a large set waits.'
  );
}

/** What the one-key table shows that a reader should not have to work out: starved waiters, PostgreSQL's connections. */
function oneKeyNotes(result: FairnessResult, summaries: readonly OneKeySummary[]): string {
  const seconds = result.settings.durationMs / 1000;
  const notes: string[] = [];
  for (const summary of summaries) {
    const fewest = Math.min(...summary.perWaiter);
    if (fewest === 0 || summary.maxMs >= result.settings.durationMs / 2) {
      const what =
        fewest === 0
          ? `one waiter got the key not once in ${seconds} s`
          : summary.maxUnfinished
            ? `one waiter was still waiting after ${howLong(summary.maxMs)}`
            : `one wait lasted ${howLong(summary.maxMs)}`;
      notes.push(
        `On ${summary.engine} a waiter starved: ${what}` +
          (summary.engine === 'sqlite' ? ' (a release and the same process’s next try take microseconds there).' : '.'),
      );
    }
  }
  const postgres = result.engines.find((engine) => engine.engine === 'postgres');
  const opened = postgres?.oneKey.connectionsOpened;
  if (postgres !== undefined && opened !== undefined) {
    const acquisitions = summaries.find((summary) => summary.engine === 'postgres')?.acquisitions ?? 0;
    const others = summaries.filter((summary) => summary.engine !== 'postgres');
    const fewer = others.length > 0 && others.every((summary) => summary.acquisitions > acquisitions);
    notes.push(
      `PostgreSQL established ${formatCount(opened)} connections during the run, for ${formatCount(acquisitions)} ` +
        'acquisitions: a process that has to wait opens its listening connection (connect, LISTEN, the advisory ' +
        'locks that tell releases to notify) and closes it when its last waiter stops, so under steady contention ' +
        'nearly every wait opens one anew' +
        (fewer
          ? ', and every release wakes all the others at once: PostgreSQL got the fewest acquisitions through here.'
          : '.'),
    );
  }
  return notes.length === 0 ? '' : ` ${notes.join(' ')}`;
}

/** The section of docs/benchmarks.md, between its markers. */
export function fairnessSection(result: FairnessResult): string {
  const { settings } = result;
  const seconds = settings.durationMs / 1000;
  const oneKey = result.engines.map(summarizeOneKey);
  const setVsStream = result.engines.map((engine) => summarizeSetVsStream(engine, settings.durationMs));
  const how = engineLabel;
  return [
    FAIRNESS_BEGIN,
    '',
    '## Waiting: fairness',
    '',
    `Measured on ${result.date.replace(/\.\d+Z$/, 'Z')} (\`bench/full/fairness.ts\`). Every caller is a process of ` +
      `its own that waits with \`acquireLocks(owner, keys, { waitMs: Infinity, signal })\`, holds what it got ` +
      `${settings.holdMs} ms, releases it and goes again, for ${seconds} s. Waiters poll with the default backoff ` +
      `(${result.wait.baseDelayMs} ms growing to ${result.wait.maxDelayMs} ms, jittered); on PostgreSQL a release ` +
      'also wakes them (NOTIFY). A wait is timed from the call to its resolution; a wait still unfinished at the ' +
      'end counts at its age then, so a caller that starves shows as its longest wait. On the machine ' +
      `described above (load average ${result.loadAverage.toFixed(1)} when this section started).`,
    '',
    `### ${settings.oneKeyWaiters} waiters on one key`,
    '',
    markdownTable(
      [
        'engine',
        'acquisitions',
        'wait median ms',
        'p99 ms',
        'longest ms',
        'longest / median',
        'acquisitions per waiter',
        'CV',
      ],
      oneKey.map((s) => [
        how(s.engine),
        formatCount(s.acquisitions),
        ms(s.medianMs),
        ms(s.p99Ms),
        longest(s),
        ratio(s),
        s.perWaiter.map((n) => formatCount(n)).join(' / '),
        s.perWaiterCv.toFixed(2),
      ]),
    ),
    '',
    'Waiters are not queued: each polls on its own schedule (or wakes on a NOTIFY), and whoever tries first after ' +
      'a release wins. The caller that has just released tries again at once, while the others sit in a pause of ' +
      `up to ${result.wait.maxDelayMs} ms, so the same process often wins again; hence the short median beside a long ` +
      'longest wait. CV is the coefficient of variation of the acquisitions per waiter (0: perfectly even).' +
      oneKeyNotes(result, oneKey),
    '',
    `### A ${settings.setKeys}-key set against ${settings.streamCallers} one-key callers`,
    '',
    `One process waits for all ${settings.setKeys} keys at once; ${settings.streamCallers} processes each loop on ` +
      `one random key of the ${settings.setKeys}, waiting for it too.`,
    '',
    markdownTable(
      [
        'engine',
        `times the set got all ${settings.setKeys}`,
        'set: wait median ms',
        'set: longest wait ms',
        'set: longest / median',
        'one-key callers: acquisitions',
        'their wait median ms',
        'their longest ms',
      ],
      setVsStream.map((s) => [
        how(s.engine),
        formatCount(s.set.acquisitions),
        ms(s.set.medianMs),
        longest(s.set),
        ratio(s.set),
        formatCount(s.stream.acquisitions),
        ms(s.stream.medianMs),
        longest(s.stream),
      ]),
    ),
    '',
    setVsStreamText(result, setVsStream),
    '',
    FAIRNESS_END,
  ].join('\n');
}

/**
 * `doc` with its fairness section replaced by `section` (or `section` appended when it
 * has none): how a run of this section alone updates docs/benchmarks.md and keeps every
 * other section's figures.
 */
export function spliceFairnessSection(doc: string, section: string): string {
  const begin = doc.indexOf(FAIRNESS_BEGIN);
  const end = doc.indexOf(FAIRNESS_END);
  if (begin < 0 || end < begin) return `${doc.trimEnd()}\n\n${section}\n`;
  return doc.slice(0, begin) + section + doc.slice(end + FAIRNESS_END.length);
}

// --- child -----------------------------------------------------------------------------

async function child(config: ChildConfig): Promise<CallerResult> {
  const dataSource = new DataSource({
    ...dataSourceOptionsFromUrl(config.url),
    logger: new SilentLogger(),
    poolSize: 2,
  } as DataSourceOptions);
  await dataSource.initialize();
  const service = new SlotLockService(dataSource);
  const owner = `PHID-FAIR-${config.role}-${config.index}`;
  await service.acquireLocks(owner, [`bench.fair.warm(${config.role},${config.index})`]);
  await service.releaseLocks(owner);
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => {
    createInterface({ input: process.stdin }).on('line', (line) => {
      if (line === 'go') resolve();
    });
  });

  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), config.durationMs);
  const waitsMs: number[] = [];
  let unfinishedMs: number | null = null;
  while (!stop.signal.aborted) {
    const keys =
      config.role === 'stream' ? [config.keys[Math.floor(Math.random() * config.keys.length)]!] : config.keys;
    const started = performance.now();
    try {
      await service.acquireLocks(owner, keys, { waitMs: Infinity, signal: stop.signal });
    } catch (error) {
      if (!stop.signal.aborted) throw error;
      unfinishedMs = performance.now() - started;
      break;
    }
    waitsMs.push(performance.now() - started);
    await sleep(config.holdMs);
    await service.releaseLocks(owner);
  }
  clearTimeout(timer);
  await service.close();
  await dataSource.destroy();
  return { role: config.role, index: config.index, waitsMs, unfinishedMs };
}

if (require.main === module) {
  const raw = process.env[CHILD_ENV];
  if (raw === undefined) {
    console.error(`bench/full/fairness.ts runs as a child of bench:full (BENCH_SECTIONS=fairness npm run bench:full)`);
    process.exitCode = 2;
  } else {
    child(JSON.parse(raw) as ChildConfig).then(
      (result) => process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0)),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  }
}
