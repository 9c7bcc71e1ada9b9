/**
 * Contention as a harness: processes take random, overlapping multi-key sets in random
 * order, hold them briefly and release them. Each winner checks that every row of its
 * set is its own; each loser that it holds nothing; a watcher checks that no owner is
 * ever seen holding part of its set (owners are named `…-n<keys>` so a reader of the
 * table can tell).
 *
 * This file holds what the test and its workers share.
 */
import * as path from 'node:path';
import type { QueryRunner } from 'typeorm';
import { sample, type ErrorSample } from './worker-kit';

export const CONTENTION_WORKER_FILE = path.join(__dirname, 'contention-worker.ts');

/** The i-th key of the shared pool. */
export function contentionKey(i: number): string {
  return `stress.contended(${i})`;
}

/** What the parent passes to each contention worker. */
export interface ContentionWorkerConfig {
  /** `mysql://…/database` of the node this process talks to. */
  readonly url: string;
  readonly workerId: number;
  /** Concurrent callers in this process. */
  readonly loops: number;
  readonly durationMs: number;
  readonly keyPool: readonly string[];
  readonly minKeys: number;
  readonly maxKeys: number;
  /** Chance that a set repeats one of its keys (the service counts it once). */
  readonly duplicateChance: number;
  /** Chance that a cycle uses `commitWithLocks` (its own transaction, COMMIT included) instead of `acquireLocks`. */
  readonly commitWithLocksChance: number;
  /** A winner holds its set 0..holdMaxMs ms. */
  readonly holdMaxMs: number;
  readonly poolSize: number;
}

/** What one contention worker prints. */
export interface ContentionWorkerResult {
  readonly workerId: number;
  readonly url: string;
  readonly attempts: number;
  /** Sets taken whole. */
  readonly successes: number;
  readonly successesByOp: Record<string, number>;
  /** SlotLockExceptions. */
  readonly conflicts: number;
  /** …of which: contention that retrying did not get past. */
  readonly conflictsContention: number;
  /** …of which: with an empty lock map (the holder released before it was read: allowed). */
  readonly conflictsEmptyLockMap: number;
  /** A SlotLockException whose lock map named a key not asked for, a bad holder, or the caller itself. */
  readonly malformedConflicts: number;
  /** Errors other than SlotLockException that reached a caller of the service. */
  readonly escaped: number;
  /** …of which carrying errno 1213 or 1205 (a raw deadlock or lock-wait timeout). */
  readonly escapedContention: number;
  readonly escapedSamples: ErrorSample[];
  /** A winner found a row of its set missing, held by someone else, or an extra row of its own. */
  readonly partialSets: number;
  /** A loser held some row afterwards. */
  readonly heldAfterConflict: number;
  /** releaseLocks did not resolve to the set's size. */
  readonly releaseMismatches: number;
  /** The owner still held rows after releaseLocks. */
  readonly leftAfterRelease: number;
  /** The checks' own queries failed (should not happen). */
  readonly checkErrors: number;
  readonly violationSamples: string[];
  /** The contention retries the service reported (diagnostics channel), by operation and code. */
  readonly retries: Record<string, number>;
  readonly unhandled: ErrorSample[];
  readonly elapsedMs: number;
}

/** What the watcher saw. */
export interface ContentionSightings {
  /** An owner seen holding fewer or more rows than its set, in one snapshot. */
  partialSets: number;
  /** Most owners seen at once. */
  maxOwners: number;
  samples: string[];
}

export function emptyContentionSightings(): ContentionSightings {
  return { partialSets: 0, maxOwners: 0, samples: [] };
}

export function contentionScan(sightings: ContentionSightings) {
  return async (runner: QueryRunner, node: number): Promise<void> => {
    const rows = (await runner.query(
      'SELECT CAST(ownerPHID AS CHAR) AS owner, COUNT(*) AS n FROM drydock_slotlock GROUP BY ownerPHID',
    )) as Array<{ owner: string; n: number | string }>;
    sightings.maxOwners = Math.max(sightings.maxOwners, rows.length);
    for (const row of rows) {
      const expected = /-n(\d+)$/.exec(row.owner)?.[1];
      if (expected === undefined || Number(row.n) !== Number(expected)) {
        sightings.partialSets += 1;
        sample(sightings.samples, `node ${node}: ${row.owner} holds ${String(row.n)} rows`);
      }
    }
  };
}

/** The workers' counts, added up. */
export function sumContention(results: readonly ContentionWorkerResult[]) {
  const sum = (pick: (result: ContentionWorkerResult) => number): number =>
    results.reduce((acc, result) => acc + pick(result), 0);
  const merge = (pick: (result: ContentionWorkerResult) => Record<string, number>): Record<string, number> => {
    const total: Record<string, number> = {};
    for (const result of results)
      for (const [key, value] of Object.entries(pick(result))) total[key] = (total[key] ?? 0) + value;
    return total;
  };
  return {
    processes: results.length,
    attempts: sum((r) => r.attempts),
    successes: sum((r) => r.successes),
    successesByOp: merge((r) => r.successesByOp),
    conflicts: sum((r) => r.conflicts),
    conflictsContention: sum((r) => r.conflictsContention),
    conflictsEmptyLockMap: sum((r) => r.conflictsEmptyLockMap),
    malformedConflicts: sum((r) => r.malformedConflicts),
    escaped: sum((r) => r.escaped),
    escapedContention: sum((r) => r.escapedContention),
    partialSets: sum((r) => r.partialSets),
    heldAfterConflict: sum((r) => r.heldAfterConflict),
    releaseMismatches: sum((r) => r.releaseMismatches),
    leftAfterRelease: sum((r) => r.leftAfterRelease),
    checkErrors: sum((r) => r.checkErrors),
    unhandled: sum((r) => r.unhandled.length),
    retries: merge((r) => r.retries),
    elapsedMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
    escapedSamples: results.flatMap((r) => r.escapedSamples),
    violationSamples: results.flatMap((r) => r.violationSamples),
    unhandledSamples: results.flatMap((r) => r.unhandled),
  };
}
