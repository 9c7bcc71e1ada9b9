/**
 * Child process of the multi-process race test (test/integration/race.test.ts), started
 * by {@link spawnWorkers}. Runs `loops` concurrent callers against one database for
 * `durationMs`, each cycling acquire → verify → hold → release → verify, and prints
 * counts of what it saw as one JSON line ({@link RaceWorkerResult}).
 *
 * Any engine: the database is a URL (`mysql://`, `postgres://`, `sqlite:`), opened with
 * the package's own `dataSourceOptionsFromUrl`, and every check reads the table through
 * TypeORM's repository and query builder, never engine-specific SQL.
 *
 * Every cycle uses a fresh owner whose name ends in `-n<distinct keys>`, so an observer
 * that only reads the table can tell a whole set from part of one.
 */
import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  DrydockSlotLock,
  SLOT_LOCK_CHANNELS,
  SlotLockException,
  SlotLockService,
  dataSourceOptionsFromUrl,
  type SlotLockRetryEvent,
} from '../../src';
import { readyBarrier, runWorker } from './spawn-workers';
import { describeError as describeErrorSample } from './stress/worker-kit';

/** What the parent passes to each race worker. */
export interface RaceWorkerConfig {
  /** URL of the database holding the migrated lock table (`engine.url(label)`). */
  readonly url: string;
  /**
   * Put in every owner, so that rows left by another run sharing the database (two test
   * runs at once) can be told from this run's.
   */
  readonly runId: string;
  /** Distinguishes this worker's owners from the other workers'. */
  readonly workerId: number;
  /** How long the callers keep cycling, from the moment the barrier opens. */
  readonly durationMs: number;
  /** Stop a caller after this many cycles even if time is left. Default: no limit. */
  readonly maxCycles?: number;
  /** Concurrent callers in this process. */
  readonly loops: number;
  /**
   * Connection pool size of this worker's DataSource, on engines with pools (MariaDB,
   * PostgreSQL). Ignored on SQLite: one connection per process, shared by its callers.
   */
  readonly poolSize: number;
  /** Each success holds its set for a random 0..holdMaxMs milliseconds. */
  readonly holdMaxMs: number;
  /**
   * Random sets: each cycle takes `minKeys..maxKeys` keys of `keyPool` in random order,
   * repeating one of them with probability `duplicateChance`.
   */
  readonly random?: {
    readonly keyPool: readonly string[];
    readonly minKeys: number;
    readonly maxKeys: number;
    readonly duplicateChance: number;
  };
  /** Fixed set: each cycle takes exactly these keys, in this order (used instead of `random`). */
  readonly fixedKeys?: readonly string[];
  /**
   * A slot family: each cycle takes one slot with acquireSlot (used instead of `random`
   * and `fixedKeys`), waiting up to `waitMs` for one where given.
   */
  readonly slots?: { readonly name: string; readonly limit: number; readonly waitMs?: number };
  /** When set, one extra loop reads the whole table every this many ms, looking for partial sets. */
  readonly observeEveryMs?: number;
}

/** An error that reached a caller although it is not a {@link SlotLockException}. */
export interface EscapedError {
  /** Which call threw it. */
  readonly op: 'acquireLocks' | 'releaseLocks' | 'verify';
  readonly name: string;
  readonly errno?: number;
  readonly code?: string;
  readonly message: string;
  readonly stack?: string;
}

/** What one race worker prints. */
export interface RaceWorkerResult {
  readonly workerId: number;
  /** The TypeORM driver this worker raced on (`mysql`, `postgres`, `better-sqlite3`). */
  readonly dataSourceType: string;
  /** Acquire attempts made (cycles). */
  readonly attempts: number;
  /** acquireLocks resolved. */
  readonly successes: number;
  /** acquireLocks rejected with a SlotLockException. */
  readonly conflicts: number;
  /** …of which with failure 'held'. */
  readonly conflictsHeld: number;
  /** …of which with failure 'contention' (retries exhausted). */
  readonly conflictsContention: number;
  /** …of which with an empty lock map (holder gone before the map was read: allowed). */
  readonly conflictsEmptyLockMap: number;
  /** Largest `attempts` seen on a SlotLockException. */
  readonly maxExceptionAttempts: number;
  /** A SlotLockException whose name, getLockMap() or lock map contents were wrong. */
  readonly malformedConflicts: number;
  /** Errors other than SlotLockException from acquireLocks, releaseLocks, or the checks' own queries. */
  readonly escaped: number;
  /**
   * …and how many of those were contention the service should have retried: MySQL
   * errno 1213 or 1205, PostgreSQL 40P01, 40001 or 55P03, SQLite SQLITE_BUSY or SQLITE_LOCKED.
   */
  readonly escapedContention: number;
  /** The first few escaped errors. */
  readonly escapedSamples: EscapedError[];
  /** After a success, the owner's rows were not exactly the requested set. */
  readonly partialSets: number;
  /** After a SlotLockException, the owner held some row. */
  readonly heldAfterConflict: number;
  /** releaseLocks resolved to something other than the number of distinct keys. */
  readonly releaseMismatches: number;
  /** After releaseLocks, the owner still held some row. */
  readonly leftAfterRelease: number;
  /** Table scans made by the observer. */
  readonly observerScans: number;
  /** Owners the observer saw holding part of their set. */
  readonly observerPartialSightings: number;
  /** The first few violations of any kind, in words. */
  readonly violationSamples: string[];
  /** Milliseconds the callers actually ran. */
  readonly elapsedMs: number;
  /**
   * Contention the service retried (deadlocks, lock-wait timeouts, SQLITE_BUSY …), from
   * its diagnostics channel: how many retries, keyed `operation:code`. Logged, not asserted.
   */
  readonly retries: Record<string, number>;
  /** Milliseconds from this process's start until it was connected and at the barrier. */
  readonly startupMs: number;
  /** With `slots`: how often each slot was taken. */
  readonly slotUses: number[];
  /** With `slots`: statements acquireSlot sent beyond the first, over every acquisition (AcquiredSlot.attempts - 1). */
  readonly extraSlotAttempts: number;
}

const MAX_SAMPLES = 5;

/** Driver codes of contention on each engine (see {@link RaceWorkerResult.escapedContention}). */
const CONTENTION_ERRNOS = new Set([1213, 1205]);
const CONTENTION_CODES = /^(40P01|40001|55P03|SQLITE_BUSY.*|SQLITE_LOCKED.*)$/;

/** The i-th key of the small pool. */
export function raceKey(i: number): string {
  return `race.key(${i})`;
}

/** The i-th key of the large sets. */
export function bigKey(i: number): string {
  return `race.big(${i})`;
}

type Counters = { -readonly [K in keyof RaceWorkerResult]: RaceWorkerResult[K] };

/** This worker's DataSource options: the URL's, plus the pool size where the engine pools connections. */
function workerDataSourceOptions(config: RaceWorkerConfig): DataSourceOptions {
  const options = dataSourceOptionsFromUrl(config.url);
  switch (options.type) {
    case 'mysql':
    case 'postgres':
      return { ...options, poolSize: config.poolSize };
    default:
      return options;
  }
}

async function main(config: RaceWorkerConfig): Promise<RaceWorkerResult> {
  const options = workerDataSourceOptions(config);
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  const service = new SlotLockService(dataSource);
  const locks = dataSource.getRepository(DrydockSlotLock);
  // Warm the pool so that connecting does not count against the racing time.
  const connections = options.type === 'better-sqlite3' ? 1 : config.poolSize;
  await Promise.all(Array.from({ length: connections }, () => locks.count()));

  const counters: Counters = {
    workerId: config.workerId,
    dataSourceType: options.type,
    attempts: 0,
    successes: 0,
    conflicts: 0,
    conflictsHeld: 0,
    conflictsContention: 0,
    conflictsEmptyLockMap: 0,
    maxExceptionAttempts: 0,
    malformedConflicts: 0,
    escaped: 0,
    escapedContention: 0,
    escapedSamples: [],
    partialSets: 0,
    heldAfterConflict: 0,
    releaseMismatches: 0,
    leftAfterRelease: 0,
    observerScans: 0,
    observerPartialSightings: 0,
    violationSamples: [],
    elapsedMs: 0,
    startupMs: 0,
    retries: {},
    slotUses: new Array<number>(config.slots?.limit ?? 0).fill(0),
    extraSlotAttempts: 0,
  };
  const onRetry = (message: unknown): void => {
    const { operation, code } = message as SlotLockRetryEvent;
    const name = `${operation}:${String(code)}`;
    counters.retries[name] = (counters.retries[name] ?? 0) + 1;
  };
  subscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
  const violation = (text: string): void => {
    if (counters.violationSamples.length < MAX_SAMPLES) counters.violationSamples.push(text);
  };
  const escape = (op: EscapedError['op'], error: unknown): void => {
    counters.escaped += 1;
    const described = describeError(op, error);
    if (
      (described.errno !== undefined && CONTENTION_ERRNOS.has(described.errno)) ||
      (described.code !== undefined && CONTENTION_CODES.test(described.code))
    ) {
      counters.escapedContention += 1;
    }
    if (counters.escapedSamples.length < MAX_SAMPLES) counters.escapedSamples.push(described);
  };

  // The keys `owner` holds, read through the entity (its mapping turns MySQL's binary columns into strings).
  const ownerKeys = async (owner: string): Promise<string[]> => {
    const rows = await locks.createQueryBuilder('lock').where('lock.ownerPHID = :owner', { owner }).getMany();
    return rows.map((row) => row.lockKey);
  };
  // Whether `owner` holds nothing; when it does hold something, which keys (for the report).
  const heldKeysIfAny = async (owner: string): Promise<string[]> =>
    (await locks.countBy({ ownerPHID: owner })) === 0 ? [] : ownerKeys(owner);

  counters.startupMs = Math.round(process.uptime() * 1000);
  await readyBarrier();
  const started = Date.now();
  const deadline = started + config.durationMs;
  let running = true;

  const caller = async (loop: number): Promise<void> => {
    for (
      let cycle = 1;
      Date.now() < deadline && (config.maxCycles === undefined || cycle <= config.maxCycles);
      cycle += 1
    ) {
      // better-sqlite3 answers synchronously, so on SQLite every await of a cycle settles
      // as a microtask: a caller meeting conflict after conflict would never let timers
      // run, and the other caller of this process would hold its set (its hold is a
      // setTimeout) until the deadline. Yield to the event loop once per cycle.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const slots = config.slots;
      const keys = slots === undefined ? pickKeys(config) : [];
      let distinct = new Set(keys);
      const owner = `PHID-RACE-${config.runId}-${config.workerId}-${loop}-${cycle}-n${slots === undefined ? distinct.size : 1}`;
      counters.attempts += 1;

      try {
        if (slots === undefined) await service.acquireLocks(owner, keys);
        else {
          const taken = await service.acquireSlot(owner, slots.name, slots.limit, { waitMs: slots.waitMs ?? 0 });
          distinct = new Set([taken.lockKey]);
          counters.slotUses[taken.slot] = (counters.slotUses[taken.slot] ?? 0) + 1;
          counters.extraSlotAttempts += taken.attempts - 1;
        }
      } catch (error) {
        if (error instanceof SlotLockException) {
          counters.conflicts += 1;
          if (error.failure === 'held') counters.conflictsHeld += 1;
          else counters.conflictsContention += 1;
          counters.maxExceptionAttempts = Math.max(counters.maxExceptionAttempts, error.attempts);
          const requested =
            slots === undefined
              ? (key: string) => distinct.has(key)
              : (key: string) => new RegExp(`^${escapeRegExp(slots.name)}\\.slot\\((0|[1-9]\\d*)\\)$`).test(key);
          const problem = checkException(error, owner, requested);
          if (problem === 'empty') counters.conflictsEmptyLockMap += 1;
          else if (problem !== undefined) {
            counters.malformedConflicts += 1;
            violation(`${owner}: malformed SlotLockException: ${problem}`);
          }
        } else {
          escape('acquireLocks', error);
        }
        // All or nothing: a failed acquisition leaves this owner holding nothing.
        try {
          const held = await heldKeysIfAny(owner);
          if (held.length > 0) {
            counters.heldAfterConflict += 1;
            violation(`${owner}: holds ${JSON.stringify(held)} after a failed acquireLocks`);
            await service.releaseLocks(owner).catch((e: unknown) => escape('releaseLocks', e));
          }
        } catch (verifyError) {
          escape('verify', verifyError);
        }
        continue;
      }

      counters.successes += 1;
      try {
        const held = await ownerKeys(owner);
        const heldSet = new Set(held);
        const inSet = held.filter((key) => distinct.has(key)).length;
        if (inSet !== distinct.size || held.length !== distinct.size || heldSet.size !== held.length) {
          counters.partialSets += 1;
          violation(`${owner}: asked for ${JSON.stringify([...distinct])}, holds ${JSON.stringify(held)}`);
        }
      } catch (verifyError) {
        escape('verify', verifyError);
      }

      await sleep(Math.floor(Math.random() * (config.holdMaxMs + 1)));

      try {
        const released = await service.releaseLocks(owner);
        if (released !== distinct.size) {
          counters.releaseMismatches += 1;
          violation(`${owner}: releaseLocks returned ${released}, expected ${distinct.size}`);
        }
      } catch (error) {
        escape('releaseLocks', error);
        // Try once more so that one escaped error does not also leave rows behind.
        await service.releaseLocks(owner).catch(() => undefined);
      }
      try {
        const left = await heldKeysIfAny(owner);
        if (left.length > 0) {
          counters.leftAfterRelease += 1;
          violation(`${owner}: still holds ${JSON.stringify(left)} after releaseLocks`);
        }
      } catch (verifyError) {
        escape('verify', verifyError);
      }
    }
  };

  // Reads the whole table in one statement (one consistent snapshot on every engine): an
  // owner seen with fewer rows than its name announces was caught holding part of a set.
  const observer = async (everyMs: number): Promise<void> => {
    while (running) {
      try {
        const rows = await locks
          .createQueryBuilder('lock')
          .select('lock.ownerPHID', 'owner')
          .addSelect('COUNT(*)', 'n')
          .groupBy('lock.ownerPHID')
          .getRawMany<{ owner: string | Buffer; n: number | string }>();
        counters.observerScans += 1;
        for (const row of rows) {
          // Raw rows skip the entity's transformer: MySQL's VARBINARY owner arrives as a Buffer.
          const owner = Buffer.isBuffer(row.owner) ? row.owner.toString('utf8') : String(row.owner);
          const expected = /-n(\d+)$/.exec(owner)?.[1];
          if (expected !== undefined && Number(row.n) !== Number(expected)) {
            counters.observerPartialSightings += 1;
            violation(`observer: ${owner} holds ${String(row.n)} rows`);
          }
        }
      } catch (error) {
        escape('verify', error);
      }
      await sleep(everyMs);
    }
  };

  const observing = config.observeEveryMs === undefined ? Promise.resolve() : observer(config.observeEveryMs);
  await Promise.all(Array.from({ length: config.loops }, (_, loop) => caller(loop)));
  counters.elapsedMs = Date.now() - started;
  running = false;
  await observing;
  unsubscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
  await dataSource.destroy();
  return counters;
}

/** Why a SlotLockException is wrong; `'empty'` for an (allowed) empty lock map. */
function checkException(
  error: SlotLockException,
  owner: string,
  requested: (key: string) => boolean,
): string | undefined {
  if (error.name !== 'SlotLockException') return `name is ${JSON.stringify(error.name)}`;
  const lockMap = error.getLockMap() as unknown;
  if (typeof lockMap !== 'object' || lockMap === null || Array.isArray(lockMap)) {
    return `getLockMap() returned ${JSON.stringify(lockMap)}`;
  }
  const entries = Object.entries(lockMap as Record<string, unknown>);
  for (const [key, holder] of entries) {
    if (!requested(key)) return `lock map names ${JSON.stringify(key)}, which was not requested`;
    if (typeof holder !== 'string' || !holder.startsWith('PHID-RACE-'))
      return `lock map holder ${JSON.stringify(holder)}`;
    if (holder === owner) return `lock map says the caller itself (${owner}) holds ${JSON.stringify(key)}`;
  }
  return entries.length === 0 ? 'empty' : undefined;
}

function pickKeys(config: RaceWorkerConfig): string[] {
  if (config.fixedKeys !== undefined) return [...config.fixedKeys];
  const random = config.random;
  if (random === undefined) throw new Error('RaceWorkerConfig needs random or fixedKeys');
  const size = random.minKeys + Math.floor(Math.random() * (random.maxKeys - random.minKeys + 1));
  const pool = [...random.keyPool];
  // Partial Fisher–Yates: the first `size` entries are a random ordered sample.
  for (let i = 0; i < size && i < pool.length; i += 1) {
    const j = i + Math.floor(Math.random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const keys = pool.slice(0, size);
  if (keys.length > 0 && Math.random() < random.duplicateChance) {
    keys.splice(Math.floor(Math.random() * (keys.length + 1)), 0, keys[Math.floor(Math.random() * keys.length)]!);
  }
  return keys;
}

function describeError(op: EscapedError['op'], error: unknown): EscapedError {
  return { ...describeErrorSample(op, error), op };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (require.main === module) {
  runWorker<RaceWorkerConfig, RaceWorkerResult>(main);
}
