/**
 * Scale-out: the package's acquire+release cycle on the single MariaDB server against a
 * three-node MariaDB Galera cluster on the same machine (scripts/galera.sh), the same
 * callers either all on one node or spread over the three; then the table-size curve
 * on the cluster. Every node, like the single server, runs on this one machine: the
 * figures show what replication and certification cost, not what more machines give.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { DataSource } from 'typeorm';
import { SlotLockService } from '../../src';
import { makeCallers, type Caller } from '../lib/callers';
import { closedLoop, type ContentionCount, type LoopResult } from '../lib/closed-loop';
import { BENCH_DATABASE } from '../lib/config';
import { openMysqlDataSource, openMysqlPool, recreateMysqlDatabase, truncateMysql } from '../lib/engines/mariadb';
import { interleave, type Arm } from '../lib/interleave';
import { countPackageRetries } from '../lib/package-retries';
import { SilentLogger } from '../lib/silent-logger';
import { median, medianRatio } from '../lib/stats';
import { benchTableSize, type TableSizeResult, type TableSizeSettings } from './table-size';

const GALERA_SCRIPT = path.join(__dirname, '..', '..', 'scripts', 'galera.sh');
const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';
/** SQL ports of the cluster's nodes (scripts/galera.sh). */
const NODE_SERVER_URLS = [3311, 3312, 3313].map((port) => `mysql://root@127.0.0.1:${port}`);

export interface GaleraSettings {
  readonly keyCounts: readonly number[];
  readonly callerCounts: readonly number[];
  readonly rounds: number;
  readonly sliceMs: number;
  readonly warmupMs: number;
  /** The table-size curve on the cluster; none when undefined. */
  readonly tableSize?: Omit<TableSizeSettings, 'url'>;
}

/** Where the callers of an arm send their statements. */
export const GALERA_ARMS = ['1 server', 'Galera, callers on 1 node', 'Galera, callers on 3 nodes'] as const;

/** What the cluster's nodes counted during an arm's slices, summed over the nodes and the rounds. */
export interface ClusterCounts {
  /** Writesets that failed certification (a conflict with another node's transaction). */
  certFailures: number;
  /** Local transactions aborted by a replicated one that needed their locks (brute-force aborts). */
  bfAborts: number;
}

export interface GaleraCase {
  readonly keys: number;
  readonly callers: number;
  /** `rounds[round][arm]`, arms in GALERA_ARMS order. */
  readonly rounds: readonly (readonly LoopResult[])[];
  /** Per arm, in GALERA_ARMS order (zero for the single server). */
  readonly cluster: readonly ClusterCounts[];
}

export interface GaleraResult {
  readonly settings: GaleraSettings;
  readonly version: string;
  readonly cases: readonly GaleraCase[];
  readonly tableSize?: TableSizeResult;
}

async function clusterCounts(nodes: readonly DataSource[]): Promise<ClusterCounts> {
  const total: ClusterCounts = { certFailures: 0, bfAborts: 0 };
  for (const node of nodes) {
    const rows = (await node.query(
      "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')",
    )) as Array<{ Variable_name: string; Value: string }>;
    for (const row of rows) {
      if (row.Variable_name === 'wsrep_local_cert_failures') total.certFailures += Number(row.Value);
      else total.bfAborts += Number(row.Value);
    }
  }
  return total;
}

function galera(command: 'start' | 'stop'): void {
  execFileSync('bash', [GALERA_SCRIPT, command], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function benchGalera(settings: GaleraSettings, progress: (text: string) => void): Promise<GaleraResult> {
  if (!existsSync(GALERA_PROVIDER))
    throw new Error(`the galera section needs the Galera provider: apt-get install -y galera-4 rsync`);
  progress('  starting a three-node cluster (scripts/galera.sh)…\n');
  galera('start');
  const sources: DataSource[] = [];
  const contention: ContentionCount = { errors: 0 };
  const stopCounting = countPackageRetries(contention);
  try {
    await recreateMysqlDatabase(NODE_SERVER_URLS[0]);
    const poolSize = Math.max(...settings.callerCounts);
    const logger = new SilentLogger();
    // Migrated through node 1; DDL replicates in total order before the next statement there returns.
    const single = await openMysqlDataSource(poolSize, logger);
    sources.push(single);
    for (const [index, server] of NODE_SERVER_URLS.entries())
      sources.push(await openMysqlDataSource(poolSize, logger, index === 0, `${server}/${BENCH_DATABASE}`));
    const nodes = sources.slice(1);
    const singleService = new SlotLockService(single);
    const nodeServices = nodes.map((node) => new SlotLockService(node));
    const servicesOf: ReadonlyArray<(caller: number) => SlotLockService> = [
      () => singleService,
      () => nodeServices[0]!,
      (caller) => nodeServices[caller % nodeServices.length]!,
    ];
    const truncate = async (arm: Arm<LoopResult>): Promise<void> => {
      const pool = openMysqlPool(
        1,
        arm.label === GALERA_ARMS[0] ? undefined : `${NODE_SERVER_URLS[0]}/${BENCH_DATABASE}`,
      );
      await truncateMysql(pool).finally(() => pool.end());
    };
    const version = String((await nodes[0]!.query('SELECT VERSION() AS v'))[0]?.v);

    const cases: GaleraCase[] = [];
    for (const keys of settings.keyCounts) {
      for (const callers of settings.callerCounts) {
        const set = makeCallers('GALERA', keys, callers).map((caller, index) => ({ caller, index }));
        const arms = GALERA_ARMS.map((label, arm): Arm<LoopResult> => {
          const cycle = async ({ caller, index }: { caller: Caller; index: number }): Promise<void> => {
            const service = servicesOf[arm]!(index);
            await service.acquireLocks(caller.owner, caller.keys);
            await service.releaseLocks(caller.owner);
          };
          return {
            label,
            warmup: () => closedLoop(set, settings.warmupMs, cycle, contention),
            measure: () => closedLoop(set, settings.sliceMs, cycle, contention),
          };
        });
        progress(`  K=${keys}, C=${callers} (cycles/s: ${GALERA_ARMS.join(' / ')}):`);
        const cluster = GALERA_ARMS.map(() => ({ certFailures: 0, bfAborts: 0 }));
        let before: ClusterCounts = { certFailures: 0, bfAborts: 0 };
        const rounds = await interleave(arms, {
          rounds: settings.rounds,
          beforeSlice: async (arm) => {
            await truncate(arm);
            before = await clusterCounts(nodes);
          },
          afterSlice: async (arm) => {
            const after = await clusterCounts(nodes);
            const counts = cluster[GALERA_ARMS.indexOf(arm.label as (typeof GALERA_ARMS)[number])]!;
            counts.certFailures += after.certFailures - before.certFailures;
            counts.bfAborts += after.bfAborts - before.bfAborts;
          },
          onRound: (_, slices) => progress(` ${slices.map((slice) => slice.cyclesPerSecond.toFixed(0)).join('/')}`),
        });
        progress('\n');
        cases.push({ keys, callers, rounds, cluster });
      }
    }
    let tableSize: TableSizeResult | undefined;
    if (settings.tableSize !== undefined) {
      progress('  table size on the cluster (node 1)\n');
      tableSize = await benchTableSize(
        { ...settings.tableSize, url: `${NODE_SERVER_URLS[0]}/${BENCH_DATABASE}` },
        progress,
      );
    }
    return { settings, version, cases, tableSize };
  } finally {
    stopCounting();
    await Promise.allSettled(sources.map((source) => source.destroy()));
    galera('stop');
  }
}

export function galeraRate(item: GaleraCase, arm: number): number {
  return median(item.rounds.map((round) => round[arm]!.cyclesPerSecond));
}

/** Median over rounds of arm / single server, within each round. */
export function galeraRatio(item: GaleraCase, arm: number): number {
  return medianRatio(
    item.rounds,
    (round) => round[arm]!.cyclesPerSecond,
    (round) => round[0]!.cyclesPerSecond,
  );
}
