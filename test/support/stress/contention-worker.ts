/**
 * Child process of the contention stress test (see ./contention.ts): `loops` callers
 * cycling take → check → hold → release → check on random overlapping sets.
 */
import 'reflect-metadata';
import { SlotLockException, SlotLockService, digestForIndex } from '../../../src';
import { readyBarrier, runWorker } from '../spawn-workers';
import type { ContentionWorkerConfig, ContentionWorkerResult } from './contention';
import { openWarmDataSource } from './servers';
import {
  countRetries,
  describeError,
  errnoOf,
  randomInt,
  randomSample,
  recordUnhandled,
  sample,
  sleep,
} from './worker-kit';

type Counters = { -readonly [K in keyof ContentionWorkerResult]: ContentionWorkerResult[K] };

async function main(config: ContentionWorkerConfig): Promise<ContentionWorkerResult> {
  const unhandled = recordUnhandled();
  const retries = countRetries();
  const dataSource = await openWarmDataSource(config.url, config.poolSize);
  const service = new SlotLockService(dataSource);

  const counters: Counters = {
    workerId: config.workerId,
    url: config.url,
    attempts: 0,
    successes: 0,
    successesByOp: {},
    conflicts: 0,
    conflictsContention: 0,
    conflictsEmptyLockMap: 0,
    malformedConflicts: 0,
    escaped: 0,
    escapedContention: 0,
    escapedSamples: [],
    partialSets: 0,
    heldAfterConflict: 0,
    releaseMismatches: 0,
    leftAfterRelease: 0,
    checkErrors: 0,
    violationSamples: [],
    retries,
    unhandled,
    elapsedMs: 0,
  };
  const violation = (text: string): void => sample(counters.violationSamples, text);
  const escape = (op: string, error: unknown): void => {
    counters.escaped += 1;
    const errno = errnoOf(error);
    if (errno === 1213 || errno === 1205) counters.escapedContention += 1;
    sample(counters.escapedSamples, describeError(op, error));
  };
  const checkFailed = (op: string, error: unknown): void => {
    counters.checkErrors += 1;
    violation(`${op}: ${describeError(op, error).message}`);
  };

  const ownedCount = async (owner: string): Promise<number> => {
    const [row] = (await dataSource.query('SELECT COUNT(*) AS n FROM drydock_slotlock WHERE ownerPHID = ?', [
      owner,
    ])) as Array<{ n: number | string }>;
    return Number(row!.n);
  };

  /** Every row of the set is the winner's, under the key it asked for, and it holds nothing else. */
  const checkWinner = async (owner: string, keys: ReadonlySet<string>): Promise<void> => {
    const indexes = [...keys].map((key) => digestForIndex(key));
    const rows = (await dataSource.query(
      `SELECT CAST(ownerPHID AS CHAR) AS owner, CAST(lockIndex AS CHAR) AS lockIndex, lockKey FROM drydock_slotlock ` +
        `WHERE lockIndex IN (${indexes.map(() => '?').join(', ')})`,
      indexes,
    )) as Array<{ owner: string; lockIndex: string; lockKey: string }>;
    const wrong = rows.filter((row) => row.owner !== owner || digestForIndex(row.lockKey) !== row.lockIndex);
    const total = await ownedCount(owner);
    if (rows.length !== keys.size || wrong.length > 0 || total !== keys.size) {
      counters.partialSets += 1;
      violation(
        `${owner} won ${JSON.stringify([...keys])} but the set's rows are ${JSON.stringify(rows)} and it holds ${total}`,
      );
    }
  };

  const checkException = (error: SlotLockException, owner: string, keys: ReadonlySet<string>): void => {
    const entries = Object.entries(error.getLockMap());
    if (entries.length === 0) counters.conflictsEmptyLockMap += 1;
    const bad = entries.find(
      ([key, holder]) =>
        !keys.has(key) || typeof holder !== 'string' || !holder.startsWith('PHID-CONT-') || holder === owner,
    );
    if (error.name !== 'SlotLockException' || bad !== undefined) {
      counters.malformedConflicts += 1;
      violation(`${owner}: malformed SlotLockException ${error.name}: ${JSON.stringify(entries)}`);
    }
  };

  await readyBarrier();
  const started = Date.now();
  const deadline = started + config.durationMs;

  const caller = async (loop: number): Promise<void> => {
    for (let cycle = 1; Date.now() < deadline; cycle += 1) {
      const size = config.minKeys + randomInt(config.maxKeys - config.minKeys);
      const keys = randomSample(config.keyPool, size);
      if (Math.random() < config.duplicateChance) keys.push(keys[randomInt(keys.length - 1)]!);
      const distinct = new Set(keys);
      const owner = `PHID-CONT-${config.workerId}-${loop}-${cycle}-n${distinct.size}`;
      const op = Math.random() < config.commitWithLocksChance ? 'commitWithLocks' : 'acquireLocks';
      counters.attempts += 1;

      try {
        if (op === 'commitWithLocks') {
          await service.commitWithLocks(owner, keys, (manager) => manager.query('SELECT 1'));
        } else {
          await service.acquireLocks(owner, keys);
        }
      } catch (error) {
        if (error instanceof SlotLockException) {
          counters.conflicts += 1;
          if (error.failure === 'contention') counters.conflictsContention += 1;
          checkException(error, owner, distinct);
        } else {
          escape(op, error);
        }
        try {
          if ((await ownedCount(owner)) > 0) {
            counters.heldAfterConflict += 1;
            violation(`${owner}: holds rows after a failed ${op}`);
            await service.releaseLocks(owner);
          }
        } catch (checkError) {
          checkFailed('check loser', checkError);
        }
        continue;
      }

      counters.successes += 1;
      counters.successesByOp[op] = (counters.successesByOp[op] ?? 0) + 1;
      try {
        await checkWinner(owner, distinct);
      } catch (checkError) {
        checkFailed('check winner', checkError);
      }
      await sleep(randomInt(config.holdMaxMs));
      try {
        const released = await service.releaseLocks(owner);
        if (released !== distinct.size) {
          counters.releaseMismatches += 1;
          violation(`${owner}: releaseLocks resolved to ${released}, expected ${distinct.size}`);
        }
      } catch (error) {
        escape('releaseLocks', error);
        await service.releaseLocks(owner).catch(() => undefined);
      }
      try {
        if ((await ownedCount(owner)) > 0) {
          counters.leftAfterRelease += 1;
          violation(`${owner}: still holds rows after releaseLocks`);
        }
      } catch (checkError) {
        checkFailed('check release', checkError);
      }
    }
  };

  await Promise.all(Array.from({ length: config.loops }, (_, loop) => caller(loop)));
  counters.elapsedMs = Date.now() - started;
  await dataSource.destroy();
  return counters;
}

if (require.main === module) {
  runWorker<ContentionWorkerConfig, ContentionWorkerResult>(main);
}
