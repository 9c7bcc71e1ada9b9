import type { DataSource, QueryRunner } from 'typeorm';
import { SlotLockService } from '../../src';
import { mysqlDialect } from '../../src/dialects/mysql';
import { freshDataSource, testDatabaseName } from '../support/database';
import { countOwned } from '../support/engines';

/**
 * SPEC 4.5 on MariaDB/MySQL: how a release reads the table (issue 12, item 4).
 *
 * `DELETE FROM t WHERE ownerPHID = ?` is a full table scan whenever the statistics make
 * the owner's range look big next to the table, and under REPEATABLE READ a scan locks
 * every row it passes: other owners' rows, those being inserted included. Measured, that
 * plan was behind nearly all the deadlocks of releases and of the INSERTs beside them.
 * The release goes through `key_owner` whatever the optimizer thinks, and must still
 * release every lock of the owner.
 */

const OWNER = 'PHID-DRYL-many';
const OTHER = 'PHID-DRYL-other';

/** Settles within `ms`, or rejects saying the call is still waiting (for a lock it should never need). */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms);
  });
  return Promise.race([promise, waited]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once a DELETE naming `owner` (as the hex literal the service sends owners as)
 * has been running for a while, i.e. waits for a row lock.
 */
async function waitForBlockedDelete(dataSource: DataSource, owner: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seenBefore = false;
  while (Date.now() < deadline) {
    const rows = (await dataSource.query(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND DB = DATABASE() " +
        "AND INFO LIKE 'DELETE%' AND INSTR(INFO, ?) > 0",
      [Buffer.from(owner).toString('hex')],
    )) as unknown[];
    if (rows.length > 0 && seenBefore) return;
    seenBefore = rows.length > 0;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no DELETE of ${owner} started waiting for a lock`);
}

describe('SPEC 4.5 releases on MariaDB read the table through key_owner', () => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshDataSource('release_locking');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await dataSource.query('DELETE FROM drydock_slotlock');
  });

  /**
   * The owner holds nearly every row, so that the optimizer would scan the table for a
   * plain DELETE by owner (checked), and another owner's row is locked by a transaction
   * that stays open: a release that scanned would wait for it.
   */
  async function otherOwnersRowLocked(): Promise<QueryRunner> {
    await service.acquireLocks(
      OWNER,
      Array.from({ length: 60 }, (_, i) => `many(${i})`),
    );
    await service.acquireLocks(OTHER, ['other']);
    await dataSource.query('ANALYZE TABLE drydock_slotlock');
    const [plan] = (await dataSource.query('EXPLAIN DELETE FROM drydock_slotlock WHERE ownerPHID = ?', [OWNER])) as [
      { type: string },
    ];
    expect(plan.type).toBe('ALL');

    const [other] = (await dataSource.query('SELECT id FROM drydock_slotlock WHERE ownerPHID = ?', [OTHER])) as [
      { id: number },
    ];
    const holder = dataSource.createQueryRunner();
    await holder.startTransaction();
    // By primary key: this row's lock and nothing else.
    await holder.query('SELECT id FROM drydock_slotlock WHERE id = ? FOR UPDATE', [other.id]);
    return holder;
  }

  async function endHolder(holder: QueryRunner): Promise<void> {
    if (holder.isTransactionActive) await holder.rollbackTransaction();
    await holder.release();
  }

  test('a release does not wait for a lock on another owner’s row, where the optimizer would scan the table', async () => {
    const holder = await otherOwnersRowLocked();
    const release = service.releaseLocks(OWNER);
    try {
      expect(await within(10_000, release, 'releaseLocks')).toBe(60);
    } finally {
      await endHolder(holder);
      await release.catch(() => undefined);
    }
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await countOwned(dataSource, OTHER)).toBe(1);
  });

  test('nor does a release inside the caller’s transaction', async () => {
    const holder = await otherOwnersRowLocked();
    try {
      await dataSource.transaction(async (manager) => {
        expect(await within(10_000, service.releaseLocks(OWNER, { manager }), 'releaseLocks({ manager })')).toBe(60);
      });
    } finally {
      await endHolder(holder);
    }
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await countOwned(dataSource, OTHER)).toBe(1);
  });

  test('a release takes every lock of the owner, those an acquisition in flight commits included', async () => {
    await service.acquireLocks(OWNER, ['held before']);
    const acquisition = dataSource.createQueryRunner();
    await acquisition.startTransaction();
    let release: Promise<number> | undefined;
    try {
      await service.acquireLocks(OWNER, ['a', 'b', 'c'], { manager: acquisition.manager });
      release = service.releaseLocks(OWNER);
      // The release meets the acquisition's uncommitted rows and waits for them.
      await waitForBlockedDelete(dataSource, OWNER);
      await acquisition.commitTransaction();
      expect(await release).toBe(4);
    } finally {
      if (acquisition.isTransactionActive) await acquisition.rollbackTransaction();
      await acquisition.release();
      await release?.catch(() => undefined);
    }
    expect(await countOwned(dataSource, OWNER)).toBe(0);
  });

  test('a table named with its database is released through its index too', async () => {
    const qualified = new SlotLockService(dataSource, {
      tableName: `${testDatabaseName('release_locking')}.drydock_slotlock`,
    });
    await qualified.acquireLocks(OWNER, ['q1', 'q2']);
    await qualified.acquireLocks(OTHER, ['q3']);
    expect(await qualified.releaseLocks(OWNER)).toBe(2);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await countOwned(dataSource, OTHER)).toBe(1);
  });
});

describe('the MySQL dialect’s DELETEs are MySQL’s syntax as well as MariaDB’s', () => {
  // Index hints belong to the multi-table DELETE in both servers (MySQL 5.7, 8.x; MariaDB);
  // nothing MariaDB-only (SET STATEMENT, compound statements) that MySQL would refuse.
  test('release by owner, through key_owner', () => {
    expect(mysqlDialect.deleteByOwner('drydock_slotlock', 'o').sql).toBe(
      'DELETE `drydock_slotlock` FROM `drydock_slotlock` FORCE INDEX (`key_owner`) WHERE ownerPHID = ?',
    );
    expect(mysqlDialect.deleteByOwner('phabricator_drydock.drydock_slotlock', 'o').sql).toBe(
      'DELETE `phabricator_drydock`.`drydock_slotlock` FROM `phabricator_drydock`.`drydock_slotlock` ' +
        'FORCE INDEX (`key_owner`) WHERE ownerPHID = ?',
    );
  });

  test('undoing one call’s rows, through key_lock', () => {
    expect(mysqlDialect.deleteOwnedIndexes('drydock_slotlock', 'o', ['aaaaaaaaaaaa', 'bbbbbbbbbbbb']).sql).toBe(
      'DELETE `drydock_slotlock` FROM `drydock_slotlock` FORCE INDEX (`key_lock`) ' +
        'WHERE ownerPHID = ? AND lockIndex IN (?, ?)',
    );
  });
});
