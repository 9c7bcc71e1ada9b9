/**
 * The seed's test plan, as a harness: Drydock allocators in several OS processes load
 * the free bindings, sleep, then allocate one as a resource; later they destroy the
 * resource and release its lock (resource first, then `releaseLocks`), so bindings are
 * reused many times. Run without slot locks, two allocators end up with one binding
 * (the control, proving the harness sees the failure); with `commitWithLocks` they must not.
 *
 * This file holds what the test and its workers share: the resource table, the names,
 * the watcher's check, and the sums of the workers' counts.
 */
import * as path from 'node:path';
import type { QueryRunner } from 'typeorm';
import { sample } from './worker-kit';
import type { ErrorSample } from './worker-kit';

export const ALLOCATION_WORKER_FILE = path.join(__dirname, 'allocation-worker.ts');

/** Drydock's resources, reduced to what the race is about: which binding each active one uses. */
export const RESOURCE_TABLE = 'stress_resource';

export const RESOURCE_TABLE_DDL =
  `CREATE TABLE ${RESOURCE_TABLE} (\n` +
  '  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,\n' +
  '  phid VARCHAR(64) NOT NULL,\n' +
  '  bindingPHID VARCHAR(64) NOT NULL,\n' +
  "  status VARCHAR(16) NOT NULL, -- 'active' or 'destroyed': Drydock keeps destroyed resources\n" +
  '  UNIQUE KEY key_phid (phid),\n' +
  '  KEY key_status (status, bindingPHID)\n' +
  ') ENGINE=InnoDB COLLATE utf8mb4_bin';

/** The lock that guards a binding, named as a Drydock blueprint would name it. */
export function bindingLockKey(bindingPHID: string): string {
  return `almanac.binding(${bindingPHID})`;
}

/** `count` bindings. */
export function bindingPHIDs(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `PHID-ABND-stress${String(i).padStart(4, '0')}`);
}

/** What the parent passes to each allocation worker. */
export interface AllocationWorkerConfig {
  /** `mysql://…/database` of the node this process talks to. */
  readonly url: string;
  readonly workerId: number;
  /** Concurrent allocators in this process. */
  readonly allocators: number;
  readonly durationMs: number;
  readonly bindings: readonly string[];
  /** False for the control run: allocate without slot locks. */
  readonly useLocks: boolean;
  /** The seed's `sleep()` between loading the free bindings and allocating: 0..this many ms. */
  readonly loadSleepMaxMs: number;
  /** A resource lives 0..this many ms before it is destroyed. */
  readonly holdMaxMs: number;
  readonly poolSize: number;
}

/** What one allocation worker prints. */
export interface AllocationWorkerResult {
  readonly workerId: number;
  readonly url: string;
  /** Allocation attempts (a free binding was found and allocated, or the attempt failed). */
  readonly attempts: number;
  /** Resources committed. */
  readonly allocations: number;
  /** `commitWithLocks` rejected with a SlotLockException (binding taken since we looked). */
  readonly conflicts: number;
  readonly conflictsContention: number;
  /** Loads that found no free binding. */
  readonly noFreeBinding: number;
  /** Resources destroyed and their locks released. */
  readonly destroyed: number;
  /** After committing, this allocator saw another active resource on its binding. */
  readonly doubleAllocationsSeen: number;
  readonly doubleAllocationSamples: string[];
  /** With locks: after committing, the binding's lock row was missing or not ours. */
  readonly lockNotOurs: number;
  /** `releaseLocks` did not resolve to 1. */
  readonly releaseMismatches: number;
  /** Errors other than SlotLockException from the service, or from the resource writes. */
  readonly escaped: number;
  readonly escapedSamples: ErrorSample[];
  /** The contention retries the service reported (diagnostics channel), by operation and code. */
  readonly retries: Record<string, number>;
  /** Allocations per binding. */
  readonly perBinding: Record<string, number>;
  readonly unhandled: ErrorSample[];
  readonly elapsedMs: number;
}

/** What the watcher saw, across every scan. */
export interface AllocationSightings {
  /** A binding with two active resources, in one snapshot. */
  doubleAllocations: number;
  /** With locks: an active resource whose binding lock was not held by that resource, in one snapshot. */
  resourcesWithoutLock: number;
  /** Most active resources seen at once. */
  maxActive: number;
  samples: string[];
}

export function emptySightings(): AllocationSightings {
  return { doubleAllocations: 0, resourcesWithoutLock: 0, maxActive: 0, samples: [] };
}

/**
 * The watcher's check, in one snapshot: no binding has two active resources, and (with
 * locks) every active resource holds its binding's lock. A lock without an active
 * resource is fine: Drydock destroys the resource first and releases its locks after.
 */
export function allocationScan(sightings: AllocationSightings, useLocks: boolean) {
  return async (runner: QueryRunner, node: number): Promise<void> => {
    const resources = (await runner.query(
      `SELECT phid, bindingPHID FROM ${RESOURCE_TABLE} WHERE status = 'active'`,
    )) as Array<{ phid: string; bindingPHID: string }>;
    const locks = useLocks
      ? ((await runner.query('SELECT CAST(ownerPHID AS CHAR) AS owner, lockKey FROM drydock_slotlock')) as Array<{
          owner: string;
          lockKey: string;
        }>)
      : [];
    sightings.maxActive = Math.max(sightings.maxActive, resources.length);
    const byBinding = new Map<string, string[]>();
    for (const resource of resources) {
      byBinding.set(resource.bindingPHID, [...(byBinding.get(resource.bindingPHID) ?? []), resource.phid]);
    }
    for (const [binding, phids] of byBinding) {
      if (phids.length > 1) {
        sightings.doubleAllocations += 1;
        sample(sightings.samples, `node ${node}: ${binding} has ${phids.length} active resources: ${phids.join(', ')}`);
      }
    }
    if (!useLocks) return;
    const holders = new Map(locks.map((lock) => [lock.lockKey, lock.owner]));
    for (const resource of resources) {
      const holder = holders.get(bindingLockKey(resource.bindingPHID));
      if (holder !== resource.phid) {
        sightings.resourcesWithoutLock += 1;
        sample(
          sightings.samples,
          `node ${node}: active ${resource.phid} on ${resource.bindingPHID}, but its lock is held by ${String(holder)}`,
        );
      }
    }
  };
}

/** The workers' counts, added up. */
export function sumAllocation(results: readonly AllocationWorkerResult[]) {
  const sum = (pick: (result: AllocationWorkerResult) => number): number =>
    results.reduce((acc, result) => acc + pick(result), 0);
  const perBinding: Record<string, number> = {};
  const retries: Record<string, number> = {};
  for (const result of results) {
    for (const [binding, count] of Object.entries(result.perBinding))
      perBinding[binding] = (perBinding[binding] ?? 0) + count;
    for (const [key, count] of Object.entries(result.retries)) retries[key] = (retries[key] ?? 0) + count;
  }
  return {
    processes: results.length,
    attempts: sum((r) => r.attempts),
    allocations: sum((r) => r.allocations),
    conflicts: sum((r) => r.conflicts),
    conflictsContention: sum((r) => r.conflictsContention),
    noFreeBinding: sum((r) => r.noFreeBinding),
    destroyed: sum((r) => r.destroyed),
    doubleAllocationsSeen: sum((r) => r.doubleAllocationsSeen),
    lockNotOurs: sum((r) => r.lockNotOurs),
    releaseMismatches: sum((r) => r.releaseMismatches),
    escaped: sum((r) => r.escaped),
    unhandled: sum((r) => r.unhandled.length),
    retries,
    perBinding,
    minReusePerBinding: Math.min(...Object.values(perBinding)),
    elapsedMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
    escapedSamples: results.flatMap((r) => r.escapedSamples),
    unhandledSamples: results.flatMap((r) => r.unhandled),
    doubleAllocationSamples: results.flatMap((r) => r.doubleAllocationSamples).slice(0, 5),
  };
}
