/**
 * The two races of the stress suite, run the same way on one server and on a cluster:
 * spawn the worker processes (each on its node), watch the database while they run,
 * then audit what is left.
 */
import type { DataSource, QueryRunner } from 'typeorm';
import { spawnWorkers } from '../spawn-workers';
import {
  ALLOCATION_WORKER_FILE,
  RESOURCE_TABLE,
  allocationScan,
  emptySightings,
  sumAllocation,
  type AllocationWorkerConfig,
  type AllocationWorkerResult,
} from './allocation';
import {
  CONTENTION_WORKER_FILE,
  contentionScan,
  emptyContentionSightings,
  sumContention,
  type ContentionWorkerConfig,
  type ContentionWorkerResult,
} from './contention';
import { Watcher } from './watcher';

/** Workers get this long past their racing time to start up and finish. */
const WORKER_GRACE_MS = 60_000;

export interface AllocationRun {
  /** One database URL per process (processes are spread over these in turn). */
  readonly urls: readonly string[];
  readonly processes: number;
  readonly allocatorsPerProcess: number;
  readonly durationMs: number;
  readonly bindings: readonly string[];
  readonly useLocks: boolean;
  readonly loadSleepMaxMs: number;
  readonly holdMaxMs: number;
  /** The watcher reads through these (one per node). */
  readonly watch: readonly DataSource[];
}

/** Runs the seed's race once and returns every count: the workers', the watcher's, and the audit's. */
export async function runAllocation(run: AllocationRun) {
  const configs: AllocationWorkerConfig[] = Array.from({ length: run.processes }, (_, workerId) => ({
    url: run.urls[workerId % run.urls.length]!,
    workerId,
    allocators: run.allocatorsPerProcess,
    durationMs: run.durationMs,
    bindings: run.bindings,
    useLocks: run.useLocks,
    loadSleepMaxMs: run.loadSleepMaxMs,
    holdMaxMs: run.holdMaxMs,
    poolSize: run.allocatorsPerProcess + 1,
  }));
  const sightings = emptySightings();
  const watcher = new Watcher(run.watch, allocationScan(sightings, run.useLocks));
  watcher.start();
  let results: AllocationWorkerResult[];
  try {
    results = await spawnWorkers<AllocationWorkerConfig, AllocationWorkerResult>({
      file: ALLOCATION_WORKER_FILE,
      configs,
      barrier: true,
      timeoutMs: run.durationMs + WORKER_GRACE_MS,
    });
  } finally {
    await watcher.stop();
  }
  const totals = { ...sumAllocation(results), allocatorsPerProcess: run.allocatorsPerProcess };
  return {
    totals,
    watcher: { scans: watcher.scans, errors: watcher.errors, errorSamples: watcher.errorSamples, ...sightings },
    audit: await auditAllocation(run.watch),
    perWorker: results.map((r) => `w${r.workerId} ${r.url.replace(/^.*@/, '')}: ${r.allocations} allocations`),
  };
}

/**
 * What is left on every node once the allocators stopped: active resources, lock rows,
 * and the resources ever allocated per binding (Drydock keeps destroyed ones).
 */
async function auditAllocation(nodes: readonly DataSource[]) {
  return Promise.all(
    nodes.map((dataSource) =>
      withCausalReads(dataSource, async (node) => {
        const [active] = (await node.query(
          `SELECT COUNT(*) AS n FROM ${RESOURCE_TABLE} WHERE status = 'active'`,
        )) as Array<{ n: string }>;
        const [locks] = (await node.query('SELECT COUNT(*) AS n FROM drydock_slotlock')) as Array<{ n: string }>;
        const perBinding = (await node.query(
          `SELECT bindingPHID AS binding, COUNT(*) AS n FROM ${RESOURCE_TABLE} GROUP BY bindingPHID ORDER BY bindingPHID`,
        )) as Array<{ binding: string; n: string }>;
        return {
          activeResources: Number(active!.n),
          lockRows: Number(locks!.n),
          resourcesPerBinding: Object.fromEntries(perBinding.map((row) => [row.binding, Number(row.n)])),
        };
      }),
    ),
  );
}

/**
 * Runs `fn` on one connection that, on a Galera node, first waits for every write the
 * cluster committed before it to be applied here (wsrep_sync_wait), so an audit made
 * right after the workers stop does not read a node that is a few write sets behind.
 */
async function withCausalReads<T>(dataSource: DataSource, fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
  const runner = dataSource.createQueryRunner();
  try {
    const [row] = (await runner.query('SELECT @@wsrep_on AS wsrepOn')) as Array<{ wsrepOn: number | string }>;
    if (Number(row!.wsrepOn) === 1) await runner.query('SET SESSION wsrep_sync_wait = 1');
    return await fn(runner);
  } finally {
    await runner.query('SET SESSION wsrep_sync_wait = 0').catch(() => undefined);
    await runner.release();
  }
}

export interface ContentionRun {
  readonly urls: readonly string[];
  readonly processes: number;
  readonly loopsPerProcess: number;
  readonly durationMs: number;
  readonly keyPool: readonly string[];
  readonly minKeys: number;
  readonly maxKeys: number;
  readonly commitWithLocksChance: number;
  readonly holdMaxMs: number;
  readonly watch: readonly DataSource[];
}

/** Runs the contention race once and returns the workers' counts, the watcher's, and what is left. */
export async function runContention(run: ContentionRun) {
  const configs: ContentionWorkerConfig[] = Array.from({ length: run.processes }, (_, workerId) => ({
    url: run.urls[workerId % run.urls.length]!,
    workerId,
    loops: run.loopsPerProcess,
    durationMs: run.durationMs,
    keyPool: run.keyPool,
    minKeys: run.minKeys,
    maxKeys: run.maxKeys,
    duplicateChance: 0.2,
    commitWithLocksChance: run.commitWithLocksChance,
    holdMaxMs: run.holdMaxMs,
    poolSize: run.loopsPerProcess + 1,
  }));
  const sightings = emptyContentionSightings();
  const watcher = new Watcher(run.watch, contentionScan(sightings));
  watcher.start();
  let results: ContentionWorkerResult[];
  try {
    results = await spawnWorkers<ContentionWorkerConfig, ContentionWorkerResult>({
      file: CONTENTION_WORKER_FILE,
      configs,
      barrier: true,
      timeoutMs: run.durationMs + WORKER_GRACE_MS,
    });
  } finally {
    await watcher.stop();
  }
  const left = await Promise.all(
    run.watch.map((dataSource) =>
      withCausalReads(dataSource, async (node) => {
        const [row] = (await node.query('SELECT COUNT(*) AS n FROM drydock_slotlock')) as Array<{ n: string }>;
        return Number(row!.n);
      }),
    ),
  );
  return {
    totals: { ...sumContention(results), loopsPerProcess: run.loopsPerProcess },
    watcher: { scans: watcher.scans, errors: watcher.errors, errorSamples: watcher.errorSamples, ...sightings },
    lockRowsLeft: left,
    perWorker: results.map(
      (r) =>
        `w${r.workerId} ${r.url.replace(/^.*@/, '')}: ${r.successes} ok / ${r.conflicts} conflicts / ${r.escaped} escaped`,
    ),
  };
}
