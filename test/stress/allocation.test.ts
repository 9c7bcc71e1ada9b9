/**
 * The seed's test plan, automated: "load the free bindings, sleep, then allocate, in two
 * processes at once" double-allocates a binding; with slot locks it must not. Several OS
 * processes with several allocators each, for several seconds, on the main MariaDB server.
 */
import type { DataSource } from 'typeorm';
import { testDatabaseName } from '../support/database';
import { killWorkers } from '../support/spawn-workers';
import { RESOURCE_TABLE, RESOURCE_TABLE_DDL, bindingPHIDs } from '../support/stress/allocation';
import { expectAllocationHeld } from '../support/stress/expectations';
import { recordFigures, report } from '../support/stress/figures';
import { runAllocation } from '../support/stress/scenarios';
import { MAIN_SERVER_URL, databaseUrl, openDataSource, prepareDatabase } from '../support/stress/servers';

const DATABASE = testDatabaseName('stress_allocation');
const URL = databaseUrl(MAIN_SERVER_URL, DATABASE);

/** 4 processes x 3 allocators = 12 allocators on 4 bindings: always someone to race. */
const SHAPE = {
  processes: 4,
  allocatorsPerProcess: 3,
  bindings: bindingPHIDs(4),
  loadSleepMaxMs: 10,
  holdMaxMs: 5,
};

describe('the seed’s test plan on one server: Drydock allocators in several processes', () => {
  let dataSource: DataSource;

  beforeAll(async () => {
    await prepareDatabase(MAIN_SERVER_URL, DATABASE, [RESOURCE_TABLE_DDL]);
    dataSource = await openDataSource(URL);
  });
  beforeEach(async () => {
    await dataSource.query(`DELETE FROM ${RESOURCE_TABLE}`);
    await dataSource.query('DELETE FROM drydock_slotlock');
  });
  afterEach(() => {
    killWorkers();
  });
  afterAll(async () => {
    killWorkers();
    await dataSource?.destroy();
  });

  it('control: without slot locks, the harness sees a binding allocated twice', async () => {
    const run = await runAllocation({ ...SHAPE, urls: [URL], durationMs: 3000, useLocks: false, watch: [dataSource] });
    report('allocation, control run without slot locks (main server)', run);
    recordFigures('allocation.control', run);

    expect(run.totals.escaped).toBe(0);
    expect(run.totals.allocations).toBeGreaterThan(0);
    // Seen by the allocators right after committing, and by the watcher in one snapshot.
    expect(run.totals.doubleAllocationsSeen + run.watcher.doubleAllocations).toBeGreaterThan(0);
    expect(run.watcher.doubleAllocations).toBeGreaterThan(0);
  });

  it('with commitWithLocks: no binding ever has two resources, every resource commits with its lock, bindings are reused', async () => {
    const run = await runAllocation({ ...SHAPE, urls: [URL], durationMs: 6000, useLocks: true, watch: [dataSource] });
    report('allocation with commitWithLocks (main server)', run);
    recordFigures('allocation.locked', run);

    expectAllocationHeld(run);
    expect(run.totals.conflicts).toBeGreaterThan(0); // allocators did race for bindings
    expect(run.totals.minReusePerBinding).toBeGreaterThanOrEqual(10); // each binding reused many times
  });
});
