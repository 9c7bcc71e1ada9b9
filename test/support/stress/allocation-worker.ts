/**
 * Child process of the allocation stress test (see ./allocation.ts): `allocators`
 * Drydock allocators racing for bindings, for `durationMs`.
 *
 * Each cycle: load the free bindings, sleep 0..loadSleepMaxMs (the seed's `sleep(10)`),
 * allocate one as a resource (with `commitWithLocks`, or in a plain transaction for the
 * control run), check that no other active resource uses it, hold it briefly, then
 * destroy it and release its lock, in Drydock's order: resource first, `releaseLocks` after.
 */
import 'reflect-metadata';
import { SlotLockException, SlotLockService, digestForIndex } from '../../../src';
import { readyBarrier, runWorker } from '../spawn-workers';
import { RESOURCE_TABLE, bindingLockKey, type AllocationWorkerConfig, type AllocationWorkerResult } from './allocation';
import { openWarmDataSource } from './servers';
import { countRetries, describeError, randomInt, recordUnhandled, sample, sleep } from './worker-kit';

type Counters = { -readonly [K in keyof AllocationWorkerResult]: AllocationWorkerResult[K] };

async function main(config: AllocationWorkerConfig): Promise<AllocationWorkerResult> {
  const unhandled = recordUnhandled();
  const retries = countRetries();
  const dataSource = await openWarmDataSource(config.url, config.poolSize);
  const service = new SlotLockService(dataSource);

  const counters: Counters = {
    workerId: config.workerId,
    url: config.url,
    attempts: 0,
    allocations: 0,
    conflicts: 0,
    conflictsContention: 0,
    noFreeBinding: 0,
    destroyed: 0,
    doubleAllocationsSeen: 0,
    doubleAllocationSamples: [],
    lockNotOurs: 0,
    releaseMismatches: 0,
    escaped: 0,
    escapedSamples: [],
    retries,
    perBinding: {},
    unhandled,
    elapsedMs: 0,
  };
  const escape = (op: string, error: unknown): void => {
    counters.escaped += 1;
    sample(counters.escapedSamples, describeError(op, error));
  };

  const insertResource = (db: { query: typeof dataSource.query }, phid: string, binding: string): Promise<unknown> =>
    db.query(`INSERT INTO ${RESOURCE_TABLE} (phid, bindingPHID, status) VALUES (?, ?, 'active')`, [phid, binding]);

  /** Allocates `binding` as resource `phid`; false when the lock was taken first. */
  const allocate = async (phid: string, binding: string): Promise<boolean> => {
    if (!config.useLocks) {
      await dataSource.transaction((manager) => insertResource(manager, phid, binding));
      return true;
    }
    try {
      await service.commitWithLocks(phid, [bindingLockKey(binding)], (manager) =>
        insertResource(manager, phid, binding),
      );
      return true;
    } catch (error) {
      if (!(error instanceof SlotLockException)) throw error;
      counters.conflicts += 1;
      if (error.failure === 'contention') counters.conflictsContention += 1;
      return false;
    }
  };

  /** Right after committing: is any other resource active on this binding, and is the lock ours? */
  const check = async (phid: string, binding: string): Promise<void> => {
    const others = (await dataSource.query(
      `SELECT phid FROM ${RESOURCE_TABLE} WHERE status = 'active' AND bindingPHID = ? AND phid <> ?`,
      [binding, phid],
    )) as Array<{ phid: string }>;
    if (others.length > 0) {
      counters.doubleAllocationsSeen += 1;
      sample(counters.doubleAllocationSamples, `${phid} and ${others.map((o) => o.phid).join(', ')} on ${binding}`);
    }
    if (!config.useLocks) return;
    const holders = (await dataSource.query(
      'SELECT CAST(ownerPHID AS CHAR) AS owner, lockKey FROM drydock_slotlock WHERE lockIndex = ?',
      [digestForIndex(bindingLockKey(binding))],
    )) as Array<{ owner: string; lockKey: string }>;
    if (holders.length !== 1 || holders[0]!.owner !== phid || holders[0]!.lockKey !== bindingLockKey(binding)) {
      counters.lockNotOurs += 1;
      sample(counters.doubleAllocationSamples, `${phid}: lock of ${binding} is ${JSON.stringify(holders)}`);
    }
  };

  /** Drydock's order: the resource is destroyed first, its locks are released after. */
  const destroy = async (phid: string): Promise<void> => {
    await dataSource.query(`UPDATE ${RESOURCE_TABLE} SET status = 'destroyed' WHERE phid = ?`, [phid]);
    if (config.useLocks) {
      const released = await service.releaseLocks(phid);
      if (released !== 1) counters.releaseMismatches += 1;
    }
    counters.destroyed += 1;
  };

  await readyBarrier();
  const started = Date.now();
  const deadline = started + config.durationMs;

  const allocator = async (allocatorId: number): Promise<void> => {
    for (let cycle = 1; Date.now() < deadline; cycle += 1) {
      let free: string[];
      try {
        const active = (await dataSource.query(
          `SELECT bindingPHID FROM ${RESOURCE_TABLE} WHERE status = 'active'`,
        )) as Array<{ bindingPHID: string }>;
        const used = new Set(active.map((row) => row.bindingPHID));
        free = config.bindings.filter((binding) => !used.has(binding));
      } catch (error) {
        escape('load free bindings', error);
        continue;
      }
      if (free.length === 0) {
        counters.noFreeBinding += 1;
        await sleep(1);
        continue;
      }
      // The window the seed opens with sleep(10): everyone's view of "free" goes stale.
      await sleep(randomInt(config.loadSleepMaxMs));
      const binding = free[randomInt(free.length - 1)]!;
      const phid = `PHID-DRYR-w${config.workerId}a${allocatorId}c${cycle}`;
      counters.attempts += 1;

      let allocated: boolean;
      try {
        allocated = await allocate(phid, binding);
      } catch (error) {
        escape(config.useLocks ? 'commitWithLocks' : 'allocate', error);
        continue;
      }
      if (!allocated) continue;
      counters.allocations += 1;
      counters.perBinding[binding] = (counters.perBinding[binding] ?? 0) + 1;

      try {
        await check(phid, binding);
      } catch (error) {
        escape('check', error);
      }
      await sleep(randomInt(config.holdMaxMs));
      try {
        await destroy(phid);
      } catch (error) {
        escape('destroy', error);
      }
    }
  };

  await Promise.all(Array.from({ length: config.allocators }, (_, id) => allocator(id)));
  counters.elapsedMs = Date.now() - started;
  await dataSource.destroy();
  return counters;
}

if (require.main === module) {
  runWorker<AllocationWorkerConfig, AllocationWorkerResult>(main);
}
