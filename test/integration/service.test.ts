import { DataSource, QueryFailedError, type EntityManager } from 'typeorm';
import {
  DrydockSlotLock,
  SlotLockException,
  SlotLockService,
  dataSourceOptionsFromUrl,
  digestForIndex,
} from '../../src';
import {
  ENGINES,
  clearLocks,
  createScratchTable,
  freshEngineDataSource,
  lockRows,
  type TestEngine,
} from '../support/engines';
import { QueryLog } from '../support/query-log';

const OWNER = 'PHID-DRYL-owner0000000000000';
const OTHER = 'PHID-DRYL-other0000000000000';

/**
 * The driver error behind a conflict, per engine: MySQL's ER_DUP_ENTRY, SQLite's
 * unique constraint; PostgreSQL's quiet insert raises none.
 */
function expectConflictCause(engine: TestEngine, cause: unknown): void {
  if (engine.name === 'mariadb') expect((cause as { errno?: number }).errno).toBe(1062);
  if (engine.name === 'sqlite') expect((cause as { code?: string }).code).toBe('SQLITE_CONSTRAINT_UNIQUE');
  if (engine.name === 'postgres') expect(cause).toBeUndefined();
}

async function insertRow(
  db: DataSource | EntityManager,
  table: string,
  values: Record<string, unknown>,
): Promise<void> {
  await db.createQueryBuilder().insert().into(table).values(values).execute();
}

async function selectAll(db: DataSource, table: string, column: string): Promise<unknown[]> {
  return db.createQueryBuilder().select(column).from(table, 't').getRawMany();
}

describe.each(ENGINES)('SPEC 4 the service on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  const queryLog = new QueryLog();

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'service', { logger: queryLog, logging: true });
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    queryLog.clear();
  });

  describe('4.1 acquireLocks', () => {
    test('takes every lock', async () => {
      await service.acquireLocks(OWNER, ['host(1)', 'host(2)']);
      expect((await lockRows(dataSource)).map((row) => [row.ownerPHID, row.lockKey]).sort()).toEqual([
        [OWNER, 'host(1)'],
        [OWNER, 'host(2)'],
      ]);
    });

    test('no keys: resolves without any query', async () => {
      await expect(service.acquireLocks(OWNER, [])).resolves.toBeUndefined();
      expect(queryLog.queries).toEqual([]);
    });

    test('duplicate keys in one call count once', async () => {
      await service.acquireLocks(OWNER, ['dup', 'dup', 'other', 'dup']);
      expect((await lockRows(dataSource)).map((row) => row.lockKey).sort()).toEqual(['dup', 'other']);
    });

    test('inserts in lock-index order, whatever order the keys came in', async () => {
      const keys = Array.from({ length: 30 }, (_, i) => `order(${i})`);
      await service.acquireLocks(OWNER, [...keys].reverse());
      await service.releaseLocks(OWNER);
      await service.acquireLocks(OWNER, keys);
      const inserts = queryLog.matching('INSERT');
      expect(inserts).toHaveLength(2);
      const sortedIndexes = keys.map(digestForIndex).sort();
      for (const insert of inserts) {
        const indexes = insert.params.filter((_, i) => i % 3 === 1);
        expect(indexes).toEqual(sortedIndexes);
      }
    });

    test('accepts any iterable of keys, such as a Set', async () => {
      await service.acquireLocks(OWNER, new Set(['set(1)', 'set(2)']));
      expect(await service.areLocksFree(['set(1)'])).toBe(false);
    });

    test('SQL text in keys and owners is data', async () => {
      const key = "x'); DROP TABLE drydock_slotlock; --";
      const owner = "o' OR '1'='1";
      await service.acquireLocks(owner, [key, 'back\\slash"quote`tick']);
      expect((await lockRows(dataSource)).map((row) => [row.ownerPHID, row.lockKey]).sort()).toEqual([
        [owner, 'back\\slash"quote`tick'],
        [owner, key],
      ]);
      expect(await service.releaseLocks(owner)).toBe(2);
    });
  });

  describe('4.2 conflict', () => {
    test('rejects with SlotLockException naming each held key and its owner; takes nothing', async () => {
      await service.acquireLocks(OTHER, ['k1', 'k2']);
      const error = (await service
        .acquireLocks(OWNER, ['k0', 'k1', 'k2', 'k3'])
        .catch((e: unknown) => e)) as SlotLockException;

      expect(error).toBeInstanceOf(SlotLockException);
      expect(error).toBeInstanceOf(Error);
      expect(error.name).toBe('SlotLockException');
      expect(error.failure).toBe('held');
      expect(error.getLockMap()).toEqual({ k1: OTHER, k2: OTHER });
      const entries = ['k1', 'k2'].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1));
      expect(error.message).toBe(
        `Unable to acquire slot locks: ${entries.map((k) => `"${k}" (owned by "${OTHER}")`).join(', ')}.`,
      );
      expectConflictCause(engine, error.cause);
      expect(await service.loadLocks(OWNER)).toEqual([]);
    });

    test('locks are not re-entrant: the same owner conflicts with itself', async () => {
      await service.acquireLocks(OWNER, ['mine']);
      const error = (await service.acquireLocks(OWNER, ['mine']).catch((e: unknown) => e)) as SlotLockException;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(error.getLockMap()).toEqual({ mine: OWNER });
      expect(await service.loadLocks(OWNER)).toHaveLength(1);
    });

    test('the message for an empty lock map is Phorge’s short one', () => {
      const error = new SlotLockException({ failure: 'held', lockMap: {} });
      expect(error.message).toBe('Unable to acquire slot locks.');
      expect(error.getLockMap()).toEqual({});
    });

    test('getLockMap returns a copy, and keys like __proto__ stay plain data', () => {
      const error = new SlotLockException({ failure: 'held', lockMap: Object.fromEntries([['__proto__', 'o']]) });
      const map = error.getLockMap();
      expect(Object.keys(map)).toEqual(['__proto__']);
      map.extra = 'x';
      expect(error.getLockMap()).toEqual(Object.fromEntries([['__proto__', 'o']]));
    });
  });

  describe('4.1/4.2 inside the caller’s transaction', () => {
    beforeAll(async () => {
      await createScratchTable(dataSource, 'lease', [{ name: 'phid', type: 'varchar', length: '64' }]);
    });
    beforeEach(async () => {
      await dataSource.createQueryBuilder().delete().from('lease').execute();
    });

    test('the caller’s commit keeps the locks with its own writes', async () => {
      await dataSource.transaction(async (manager) => {
        await insertRow(manager, 'lease', { phid: 'lease(1)' });
        await service.acquireLocks(OWNER, ['host(1)'], { manager });
      });
      expect(await selectAll(dataSource, 'lease', 'phid')).toEqual([{ phid: 'lease(1)' }]);
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['host(1)']);
    });

    test('the caller’s rollback drops the locks with its own writes', async () => {
      const failure = new Error('lease failed');
      await expect(
        dataSource.transaction(async (manager) => {
          await insertRow(manager, 'lease', { phid: 'lease(2)' });
          await service.acquireLocks(OWNER, ['host(2)'], { manager });
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await selectAll(dataSource, 'lease', 'phid')).toEqual([]);
      expect(await service.isLockFree('host(2)')).toBe(true);
    });

    test('a conflict leaves the caller’s transaction usable: what it writes next still commits', async () => {
      await service.acquireLocks(OTHER, ['host(3)']);
      let caught: unknown;
      await dataSource.transaction(async (manager) => {
        caught = await service.acquireLocks(OWNER, ['host(4)', 'host(3)'], { manager }).catch((e: unknown) => e);
        await insertRow(manager, 'lease', { phid: 'lease(after conflict)' });
        await service.acquireLocks(OWNER, ['host(5)'], { manager });
      });
      expect(caught).toBeInstanceOf(SlotLockException);
      expect((caught as SlotLockException).getLockMap()).toEqual({ 'host(3)': OTHER });
      expect((caught as SlotLockException).transactionRolledBack).toBe(false);
      expect(await selectAll(dataSource, 'lease', 'phid')).toEqual([{ phid: 'lease(after conflict)' }]);
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['host(5)']);
    });
  });

  describe('4.3 other errors pass through', () => {
    test('a missing table is TypeORM’s own error, not a SlotLockException', async () => {
      const elsewhere = new SlotLockService(dataSource, { tableName: 'no_such_table' });
      const error = await elsewhere.acquireLocks(OWNER, ['k']).catch((e: unknown) => e);
      expect(error).not.toBeInstanceOf(SlotLockException);
      expect(error).toBeInstanceOf(QueryFailedError);
    });

    test('also when the service skips TypeORM’s query runner (a DataSource that logs nothing)', async () => {
      const quiet = new DataSource(dataSourceOptionsFromUrl(engine.url('service')));
      await quiet.initialize();
      try {
        const elsewhere = new SlotLockService(quiet, { tableName: 'no_such_table' });
        for (const call of [() => elsewhere.acquireLocks(OWNER, ['k']), () => elsewhere.releaseLocks(OWNER)]) {
          const error = await call().catch((e: unknown) => e);
          expect(error).not.toBeInstanceOf(SlotLockException);
          expect(error).toBeInstanceOf(QueryFailedError);
        }
        // And the same service's conflicts are still conflicts.
        await service.acquireLocks(OTHER, ['quiet']);
        const conflict = await new SlotLockService(quiet).acquireLocks(OWNER, ['quiet']).catch((e: unknown) => e);
        expect(conflict).toBeInstanceOf(SlotLockException);
        expect((conflict as SlotLockException).getLockMap()).toEqual({ quiet: OTHER });
      } finally {
        await quiet.destroy();
      }
    });
  });

  describe('4.5 releaseLocks', () => {
    test('deletes every lock of the owner, resolves to the count, leaves others alone', async () => {
      await service.acquireLocks(OWNER, ['a', 'b', 'c']);
      await service.acquireLocks(OTHER, ['d']);
      expect(await service.releaseLocks(OWNER)).toBe(3);
      expect(await service.releaseLocks(OWNER)).toBe(0);
      expect((await lockRows(dataSource)).map((row) => row.lockKey)).toEqual(['d']);
    });
  });

  describe('4.6 reading locks', () => {
    test('loadLocks returns the owner’s entities', async () => {
      await service.acquireLocks(OWNER, ['a', 'b']);
      const locks = await service.loadLocks(OWNER);
      expect(locks.every((lock) => lock instanceof DrydockSlotLock)).toBe(true);
      expect(locks.map((lock) => [lock.ownerPHID, lock.lockKey, lock.lockIndex]).sort()).toEqual([
        [OWNER, 'a', digestForIndex('a')],
        [OWNER, 'b', digestForIndex('b')],
      ]);
    });

    test('loadHeldLocks finds held keys only, and sends no query for no keys', async () => {
      await service.acquireLocks(OWNER, ['a']);
      expect((await service.loadHeldLocks(['a', 'z'])).map((lock) => lock.lockKey)).toEqual(['a']);
      queryLog.clear();
      expect(await service.loadHeldLocks([])).toEqual([]);
      expect(queryLog.queries).toEqual([]);
    });

    test('isLockFree and areLocksFree', async () => {
      await service.acquireLocks(OWNER, ['a']);
      expect(await service.isLockFree('a')).toBe(false);
      expect(await service.isLockFree('z')).toBe(true);
      expect(await service.areLocksFree(['y', 'z'])).toBe(true);
      expect(await service.areLocksFree(['z', 'a'])).toBe(false);
    });
  });

  describe('4.7 acquireSlot', () => {
    test('takes one free slot of the family, and names it', async () => {
      await service.acquireLocks(OTHER, ['licence.slot(0)', 'licence.slot(2)']);
      const taken = await service.acquireSlot(OWNER, 'licence', 3);
      expect(taken).toEqual({ slot: 1, lockKey: 'licence.slot(1)', attempts: 1 });
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['licence.slot(1)']);
    });

    test('rejects with SlotLockException listing the holders when every slot is held', async () => {
      await service.acquireSlot('PHID-A', 'pool', 2);
      await service.acquireSlot('PHID-B', 'pool', 2);
      const error = (await service.acquireSlot(OWNER, 'pool', 2).catch((e: unknown) => e)) as SlotLockException;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(Object.keys(error.getLockMap()).sort()).toEqual(['pool.slot(0)', 'pool.slot(1)']);
      expect(Object.values(error.getLockMap()).sort()).toEqual(['PHID-A', 'PHID-B']);
      expect(await service.loadLocks(OWNER)).toEqual([]);
    });

    test('a family of a million slots: one statement takes a free one, whatever the limit', async () => {
      await service.acquireLocks(OTHER, ['million.slot(0)', 'million.slot(999999)']);
      queryLog.clear();
      const taken = await service.acquireSlot(OWNER, 'million', 1_000_000);
      expect(taken.lockKey).toBe(`million.slot(${taken.slot})`);
      expect(taken.slot).toBeGreaterThanOrEqual(0);
      expect(taken.slot).toBeLessThan(1_000_000);
      expect(taken.attempts).toBe(1);
      // One batch of candidates, not the family: the statements stay small.
      const sent = queryLog.queries.filter((query) => !/^\s*SELECT @@/i.test(query.sql));
      expect(sent.length).toBeLessThanOrEqual(2);
      for (const query of sent) expect(query.params.length).toBeLessThanOrEqual(3 * 32 + 1);
    });

    test('when random candidates are held, the server’s lowest free slot is taken', async () => {
      // 200 slots, 199 held: random batches of 32 almost never meet the free one.
      const keys = Array.from({ length: 200 }, (_, slot) => `crowded.slot(${slot})`).filter(
        (key) => key !== 'crowded.slot(137)',
      );
      await service.acquireLocks(OTHER, keys);
      const taken = await service.acquireSlot(OWNER, 'crowded', 200);
      expect(taken.slot).toBe(137);
      expect(taken.lockKey).toBe('crowded.slot(137)');
    });

    test('a family with every slot held: held, with a bounded sample of holders', async () => {
      await service.acquireLocks(
        OTHER,
        Array.from({ length: 100 }, (_, slot) => `full.slot(${slot})`),
      );
      const error = (await service.acquireSlot(OWNER, 'full', 100).catch((e: unknown) => e)) as SlotLockException;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(error.failure).toBe('held');
      const holders = Object.entries(error.getLockMap());
      expect(holders.length).toBeGreaterThan(0);
      expect(holders.length).toBeLessThanOrEqual(32);
      for (const [key, owner] of holders) {
        expect(key).toMatch(/^full\.slot\(\d+\)$/);
        expect(owner).toBe(OTHER);
      }
      expect(await service.loadLocks(OWNER)).toEqual([]);
    });

    test('only keys written as the family writes them count as its slots', async () => {
      // "odd.slot(07)" and "odd.slot(1" are other locks, not slots 7 and 1: slot 1 is free.
      await service.acquireLocks(OTHER, [
        'odd.slot(0)',
        'odd.slot(01)',
        'odd.slot(1',
        'odd.slot(x)',
        ...Array.from({ length: 38 }, (_, i) => `odd.slot(${i + 2})`),
      ]);
      const taken = await service.acquireSlot(OWNER, 'odd', 40);
      expect(taken.slot).toBe(1);
    });

    test('spreads callers over the slots at random', async () => {
      const seen = new Set<number>();
      for (let i = 0; i < 40 && seen.size < 4; i += 1) {
        const { slot } = await service.acquireSlot(OWNER, 'spread', 4);
        seen.add(slot);
        await service.releaseLocks(OWNER);
      }
      expect(seen.size).toBe(4);
    });
  });

  describe('4.8 commitWithLocks', () => {
    beforeAll(async () => {
      await createScratchTable(dataSource, 'resource', [{ name: 'binding', type: 'varchar', length: '64' }]);
      await createScratchTable(dataSource, 'failure_log', [{ name: 'message', type: 'text' }]);
      await createScratchTable(dataSource, 'uniq', [{ name: 'v', type: 'int', isPrimary: true }]);
    });
    beforeEach(async () => {
      for (const table of ['resource', 'failure_log', 'uniq']) {
        await dataSource.createQueryBuilder().delete().from(table).execute();
      }
    });

    test('commits the work and the locks together, resolving to what work returned', async () => {
      const result = await service.commitWithLocks(OWNER, ['binding(1)'], async (manager) => {
        await insertRow(manager, 'resource', { binding: 'binding(1)' });
        return 'allocated';
      });
      expect(result).toBe('allocated');
      expect(await selectAll(dataSource, 'resource', 'binding')).toEqual([{ binding: 'binding(1)' }]);
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['binding(1)']);
    });

    test('with no keys, commits the work alone', async () => {
      const result = await service.commitWithLocks(OWNER, [], async (manager) => {
        await insertRow(manager, 'resource', { binding: 'no locks' });
        return 'alone';
      });
      expect(result).toBe('alone');
      expect(await selectAll(dataSource, 'resource', 'binding')).toEqual([{ binding: 'no locks' }]);
      expect(await lockRows(dataSource)).toEqual([]);
    });

    test('when work fails, neither the locks nor the work remain', async () => {
      const failure = new Error('allocation failed');
      await expect(
        service.commitWithLocks(OWNER, ['binding(2)'], async (manager) => {
          await insertRow(manager, 'resource', { binding: 'binding(2)' });
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await selectAll(dataSource, 'resource', 'binding')).toEqual([]);
      expect(await service.isLockFree('binding(2)')).toBe(true);
    });

    test('on conflict: rolls back, runs onConflict outside the rolled-back transaction, rejects', async () => {
      await service.acquireLocks(OTHER, ['binding(3)']);
      let workRan = false;
      const error = (await service
        .commitWithLocks(
          OWNER,
          ['binding(3)'],
          () => {
            workRan = true;
          },
          {
            onConflict: async (exception) => {
              await insertRow(dataSource, 'failure_log', { message: exception.message });
            },
          },
        )
        .catch((e: unknown) => e)) as SlotLockException;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(error.getLockMap()).toEqual({ 'binding(3)': OTHER });
      expect(workRan).toBe(false);
      expect(await selectAll(dataSource, 'failure_log', 'message')).toEqual([{ message: error.message }]);
      expect(await service.loadLocks(OWNER)).toEqual([]);
    });

    test('a duplicate key in the work’s own tables is not reported as a slot lock conflict', async () => {
      await insertRow(dataSource, 'uniq', { v: 1 });
      const error = await service
        .commitWithLocks(OWNER, ['binding(4)'], (manager) => insertRow(manager, 'uniq', { v: 1 }))
        .catch((e: unknown) => e);
      expect(error).not.toBeInstanceOf(SlotLockException);
      expect(error).toBeInstanceOf(QueryFailedError);
      expect(await service.isLockFree('binding(4)')).toBe(true);
    });
  });

  describe('4.9 withLocks', () => {
    test('holds the locks while fn runs, releases them after', async () => {
      const result = await service.withLocks(OWNER, ['deploy'], async () => {
        expect(await service.isLockFree('deploy')).toBe(false);
        return 7;
      });
      expect(result).toBe(7);
      expect(await service.isLockFree('deploy')).toBe(true);
    });

    test('releases when fn throws, and passes the error on', async () => {
      const failure = new Error('boom');
      await expect(
        service.withLocks(OWNER, ['deploy'], () => {
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await service.isLockFree('deploy')).toBe(true);
    });

    test('does not run fn when a lock is held', async () => {
      await service.acquireLocks(OTHER, ['deploy']);
      const fn = jest.fn();
      await expect(service.withLocks(OWNER, ['deploy'], fn)).rejects.toBeInstanceOf(SlotLockException);
      expect(fn).not.toHaveBeenCalled();
      expect(await service.isLockFree('deploy')).toBe(false);
    });
  });
});
