/**
 * The contract smoke of one compatibility cell, as a consumer project runs it: the packed
 * package and the cell's pinned peers, compiled once as CommonJS and once as ESM.
 * One suite per engine whose URL the matrix passes (COMPAT_MARIADB_URL,
 * COMPAT_POSTGRES_URL, COMPAT_SQLITE_URL), each on a database of its own.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DataSource, QueryFailedError, type EntityManager } from 'typeorm';
import { dataSourceOptionsFromUrl, SlotLockException, SlotLockService } from 'drydock-slotlock';

const ENGINES: Array<[engine: string, url: string]> = [];
for (const [engine, variable] of [
  ['mariadb', 'COMPAT_MARIADB_URL'],
  ['postgres', 'COMPAT_POSTGRES_URL'],
  ['sqlite', 'COMPAT_SQLITE_URL'],
] as const) {
  const url = process.env[variable];
  if (url !== undefined && url !== '') ENGINES.push([engine, url]);
}

const HOLDER = 'PHID-DRYL-compatholder0000000';
const OTHER = 'PHID-DRYL-compatother00000000';
const LEASE = 'PHID-DRYL-compatlease00000000';
const RESOURCE = 'PHID-DRYR-compatresource00000';

if (ENGINES.length === 0) throw new Error('no COMPAT_*_URL set: the matrix passes at least one');

for (const [engine, url] of ENGINES) {
  describe(`${engine}: the contract through the packed package`, () => {
    let dataSource: DataSource;
    let slotLocks: SlotLockService;
    const p = (n: number): string => (engine === 'postgres' ? `$${n}` : '?');
    const insertLease = (manager: EntityManager | DataSource, phid: string): Promise<unknown> =>
      manager.query(`INSERT INTO lease (phid) VALUES (${p(1)})`, [phid]);
    const leases = async (): Promise<string[]> =>
      ((await dataSource.query('SELECT phid FROM lease ORDER BY phid')) as Array<{ phid: string }>).map(
        (row) => row.phid,
      );

    before(async () => {
      dataSource = new DataSource(dataSourceOptionsFromUrl(url));
      await dataSource.initialize();
      await dataSource.runMigrations();
      await dataSource.query('CREATE TABLE lease (phid VARCHAR(64) NOT NULL PRIMARY KEY)');
      slotLocks = new SlotLockService(dataSource);
    });
    after(async () => {
      await dataSource?.destroy();
    });

    it('acquires every lock', async () => {
      await slotLocks.acquireLocks(HOLDER, ['host(1)', 'licence.slot(0)']);
      assert.deepEqual((await slotLocks.loadLocks(HOLDER)).map((lock) => lock.lockKey).sort(), [
        'host(1)',
        'licence.slot(0)',
      ]);
    });

    it('refuses a held lock with a SlotLockException and its lock map, taking nothing', async () => {
      const error = await slotLocks.acquireLocks(OTHER, ['host(2)', 'host(1)']).then(
        () => assert.fail('a held lock was acquired'),
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof SlotLockException, `not a SlotLockException: ${String(error)}`);
      assert.equal(error.name, 'SlotLockException');
      assert.equal(error.failure, 'held');
      assert.deepEqual(error.getLockMap(), { 'host(1)': HOLDER });
      assert.equal(error.message, `Unable to acquire slot locks: "host(1)" (owned by "${HOLDER}").`);
      assert.equal(await slotLocks.isLockFree('host(2)'), true);
      assert.deepEqual(await slotLocks.loadLocks(OTHER), []);
    });

    it("joins the caller's transaction: locks and writes commit, or roll back, together", async () => {
      await dataSource.transaction(async (manager) => {
        await insertLease(manager, LEASE);
        await slotLocks.acquireLocks(LEASE, ['host(3)'], { manager });
      });
      const error = await dataSource
        .transaction(async (manager) => {
          await insertLease(manager, 'PHID-DRYL-rolledback');
          await slotLocks.acquireLocks('PHID-DRYL-rolledback', ['host(3)'], { manager });
        })
        .catch((caught: unknown) => caught);
      assert.ok(error instanceof SlotLockException);
      assert.deepEqual(error.getLockMap(), { 'host(3)': LEASE });
      assert.deepEqual(await leases(), [LEASE]);
      assert.equal(await slotLocks.isLockFree('host(3)'), false);
    });

    it('commitWithLocks commits the locks with the work, and on a conflict rolls back before onConflict', async () => {
      const done = await slotLocks.commitWithLocks(RESOURCE, ['binding(b1)'], async (manager) => {
        await insertLease(manager, RESOURCE);
        return 'allocated';
      });
      assert.equal(done, 'allocated');
      let reported: SlotLockException | undefined;
      const error = await slotLocks
        .commitWithLocks(
          'PHID-DRYR-second',
          ['binding(b1)'],
          async (manager) => {
            await insertLease(manager, 'PHID-DRYR-second');
          },
          {
            onConflict: (exception) => {
              reported = exception;
            },
          },
        )
        .catch((caught: unknown) => caught);
      assert.ok(error instanceof SlotLockException);
      assert.equal(reported, error);
      assert.deepEqual(error.getLockMap(), { 'binding(b1)': RESOURCE });
      assert.deepEqual(await leases(), [LEASE, RESOURCE].sort());
    });

    it("a failure that is not a conflict is TypeORM's QueryFailedError, whichever path sent the statement", async () => {
      // A table that does not exist: on SQLite, TypeORM 0.3 and 1.0 leave the error of a
      // statement SQLite cannot prepare unwrapped; the package makes it the same class.
      const missing = new SlotLockService(dataSource, { tableName: 'no_such_lock_table' });
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['acquireLocks', () => missing.acquireLocks(OTHER, ['k'])],
        [
          'acquireLocks in a transaction',
          () => dataSource.transaction((manager) => missing.acquireLocks(OTHER, ['k'], { manager })),
        ],
        ['loadLocks', () => missing.loadLocks(OTHER)],
        ['releaseLocks', () => missing.releaseLocks(OTHER)],
        ['commitWithLocks', () => missing.commitWithLocks(OTHER, ['k'], () => 'never')],
      ];
      for (const [label, call] of calls) {
        const error = await call().then(
          () => assert.fail(`${label} resolved on a missing table`),
          (caught: unknown) => caught,
        );
        assert.ok(error instanceof QueryFailedError, `${label}: not a QueryFailedError: ${String(error)}`);
      }
    });

    it('releases every lock of an owner, and nothing twice', async () => {
      assert.equal(await slotLocks.releaseLocks(HOLDER), 2);
      assert.equal(await slotLocks.releaseLocks(LEASE), 1);
      assert.equal(await slotLocks.releaseLocks(RESOURCE), 1);
      assert.equal(await slotLocks.releaseLocks(HOLDER), 0);
      assert.equal(await slotLocks.areLocksFree(['host(1)', 'licence.slot(0)', 'host(3)', 'binding(b1)']), true);
    });
  });
}
