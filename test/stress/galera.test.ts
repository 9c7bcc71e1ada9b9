/**
 * A real cluster: the contention and allocation races on a three-node MariaDB Galera
 * cluster on loopback (scripts/galera.sh), each process talking to a different node.
 * Conflicts between nodes arrive mostly as ER_LOCK_DEADLOCK (1213) at COMMIT, rarely as
 * ER_DUP_ENTRY: the service must turn them into retries or SlotLockExceptions, never let
 * a raw 1213 reach its caller (SPEC 4.4, 7).
 */
import type { DataSource } from 'typeorm';
import { killWorkers } from '../support/spawn-workers';
import { RESOURCE_TABLE, RESOURCE_TABLE_DDL, bindingPHIDs } from '../support/stress/allocation';
import { contentionKey } from '../support/stress/contention';
import { expectAllocationHeld, expectContentionHeld } from '../support/stress/expectations';
import { recordFigures, report } from '../support/stress/figures';
import { runAllocation, runContention } from '../support/stress/scenarios';
import {
  GALERA_NODE_URLS,
  databaseUrl,
  galeraCluster,
  galeraCounters,
  openDataSource,
  prepareDatabase,
} from '../support/stress/servers';

const DATABASE = 'slotlock_stress_galera';
const URLS = GALERA_NODE_URLS.map((server) => databaseUrl(server, DATABASE));

describe('on a three-node MariaDB Galera cluster, each process on its own node', () => {
  let nodes: DataSource[] = [];

  beforeAll(async () => {
    await galeraCluster.start();
    await prepareDatabase(GALERA_NODE_URLS[0]!, DATABASE, [RESOURCE_TABLE_DDL]);
    nodes = await Promise.all(URLS.map((url) => openDataSource(url)));
    // DDL replicates in total order: every node has both tables before anyone races.
    for (const node of nodes) await node.query(`SELECT COUNT(*) FROM ${RESOURCE_TABLE}, drydock_slotlock`);
  }, 300_000);
  beforeEach(async () => {
    await nodes[0]!.query(`DELETE FROM ${RESOURCE_TABLE}`);
    await nodes[0]!.query('DELETE FROM drydock_slotlock');
  });
  afterEach(() => {
    killWorkers();
  });
  afterAll(async () => {
    killWorkers();
    await Promise.all(nodes.map((node) => node.destroy()));
    await galeraCluster.stop();
  }, 120_000);

  /** What the cluster counted during `fn`, per node: certification failures, brute-force aborts, commits. */
  async function clusterDelta<T>(fn: () => Promise<T>): Promise<{ result: T; nodes: Array<Record<string, number>> }> {
    const before = await Promise.all(nodes.map(galeraCounters));
    const result = await fn();
    const after = await Promise.all(nodes.map(galeraCounters));
    return {
      result,
      nodes: after.map((counters, i) =>
        Object.fromEntries(
          Object.entries(counters).map(([name, value]) => [
            name,
            name === 'wsrep_cluster_size' ? value : value - (before[i]![name] ?? 0),
          ]),
        ),
      ),
    };
  }

  it('contention: 3 processes x 3 callers on 1-5 of 12 keys: all or nothing, no raw 1213, nothing left on any node', async () => {
    const { result: run, nodes: cluster } = await clusterDelta(() =>
      runContention({
        urls: URLS,
        processes: 3,
        loopsPerProcess: 3,
        durationMs: 8000,
        keyPool: Array.from({ length: 12 }, (_, i) => contentionKey(i)),
        minKeys: 1,
        maxKeys: 5,
        commitWithLocksChance: 0.4,
        holdMaxMs: 3,
        watch: nodes,
      }),
    );
    report('contention on Galera', { ...run, cluster });
    recordFigures('contention.galera', { ...run, cluster });

    expectContentionHeld(run);
    // Proof that nodes did conflict with each other (certification failures / BF aborts).
    const crossNode = cluster.reduce(
      (acc, node) => acc + node.wsrep_local_cert_failures! + node.wsrep_local_bf_aborts!,
      0,
    );
    expect(crossNode).toBeGreaterThan(0);
  });

  it('allocation, control: without slot locks the harness sees a binding allocated twice across nodes', async () => {
    const run = await runAllocation({
      urls: URLS,
      processes: 3,
      allocatorsPerProcess: 3,
      durationMs: 3000,
      bindings: bindingPHIDs(3),
      useLocks: false,
      loadSleepMaxMs: 10,
      holdMaxMs: 5,
      watch: nodes,
    });
    report('allocation on Galera, control run without slot locks', run);
    recordFigures('allocation.galera.control', run);

    expect(run.totals.escaped).toBe(0);
    expect(run.watcher.doubleAllocations).toBeGreaterThan(0);
  });

  it('allocation with commitWithLocks: no binding ever has two resources on any node, bindings are reused', async () => {
    const { result: run, nodes: cluster } = await clusterDelta(() =>
      runAllocation({
        urls: URLS,
        processes: 3,
        allocatorsPerProcess: 3,
        durationMs: 8000,
        bindings: bindingPHIDs(3),
        useLocks: true,
        loadSleepMaxMs: 10,
        holdMaxMs: 5,
        watch: nodes,
      }),
    );
    report('allocation on Galera with commitWithLocks', { ...run, cluster });
    recordFigures('allocation.galera.locked', { ...run, cluster });

    expectAllocationHeld(run);
    expect(run.totals.conflicts).toBeGreaterThan(0);
    expect(run.totals.minReusePerBinding).toBeGreaterThanOrEqual(10);
  });
});
