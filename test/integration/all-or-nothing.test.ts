import type { DataSource } from 'typeorm';
import { SlotLockException, SlotLockService, digestForIndex } from '../../src';
import { ENGINES, clearLocks, countOwned, createScratchTable, freshEngineDataSource } from '../support/engines';
import { QueryLog } from '../support/query-log';

const OWNER = 'PHID-DRYL-bulk';
const HOLDER = 'PHID-DRYL-holder';

/**
 * 20,000 keys of 1 KB each: about 20 MB of keys, more than one max_allowed_packet (16 MB)
 * on MariaDB, and more rows than one statement carries on PostgreSQL and SQLite.
 */
const bigKeys = Array.from({ length: 20_000 }, (_, i) => `bulk(${i})`.padEnd(1024, '.'));

/** The key that sorts last by lock index, i.e. the last row the service sends. */
const lastKey = [...bigKeys].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1)).at(-1)!;

function notes(db: Pick<DataSource, 'createQueryBuilder'>): Promise<unknown[]> {
  return db.createQueryBuilder().select('note').from('journal', 'j').getRawMany();
}

describe.each(ENGINES)('SPEC 4.1 all or nothing, across several statements, on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  const queryLog = new QueryLog();

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'all_or_nothing', { logger: queryLog, logging: true });
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    queryLog.clear();
  });

  test('a conflict on the last of 20,000 keys of 1 KB leaves none of them held', async () => {
    await service.acquireLocks(HOLDER, [lastKey]);
    queryLog.clear();

    const error = (await service.acquireLocks(OWNER, bigKeys).catch((e: unknown) => e)) as SlotLockException;

    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.getLockMap()).toEqual({ [lastKey]: HOLDER });
    expect(queryLog.matching('INSERT').length).toBeGreaterThan(1);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
  });

  test('without a conflict all 20,000 are taken, and released in one call', async () => {
    await service.acquireLocks(OWNER, bigKeys);
    expect(queryLog.matching('INSERT').length).toBeGreaterThan(1);
    expect(await countOwned(dataSource, OWNER)).toBe(bigKeys.length);
    expect(await service.releaseLocks(OWNER)).toBe(bigKeys.length);
  });

  test('inside a caller’s transaction, a conflict on the last chunk undoes the earlier chunks only', async () => {
    await service.acquireLocks(HOLDER, [lastKey]);
    await createScratchTable(dataSource, 'journal', [{ name: 'note', type: 'varchar', length: '32' }]);

    let caught: unknown;
    await dataSource.transaction(async (manager) => {
      await manager.createQueryBuilder().insert().into('journal').values({ note: 'before' }).execute();
      caught = await service.acquireLocks(OWNER, bigKeys, { manager }).catch((e: unknown) => e);
      // Seen from inside the transaction: the earlier chunks are gone, the caller's own write is
      // not, and the transaction still works (PostgreSQL through the service's savepoint).
      expect(await countOwned(manager, OWNER)).toBe(0);
      expect(await notes(manager)).toEqual([{ note: 'before' }]);
    });

    expect(caught).toBeInstanceOf(SlotLockException);
    expect((caught as SlotLockException).transactionRolledBack).toBe(false);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await notes(dataSource)).toEqual([{ note: 'before' }]);
  });
});
