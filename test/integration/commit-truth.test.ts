import { DataSource, QueryFailedError, type EntityManager } from 'typeorm';
import { SlotLockService, digestForIndex } from '../../src';
import { endTransaction, heavyTransaction, keysInIndexOrder, waitForBlockedInsert } from '../support/contention';
import { ENGINES, createScratchTable, freshEngineDataSource } from '../support/engines';

/**
 * SPEC 4.10: commitWithLocks resolves only if its COMMIT committed. A statement of
 * `work` that fails and is caught by `work` can end the transaction on the server
 * (PostgreSQL aborts it on any error, MySQL rolls it back on a deadlock); the call must
 * not then report locks and writes that were never committed (issue 9, item 4).
 */

const OWNER = 'PHID-DRYL-commit';

async function workRows(dataSource: DataSource): Promise<string[]> {
  const rows = (await dataSource.query('SELECT name FROM work_row ORDER BY name')) as Array<{ name: string }>;
  return rows.map((row) => row.name);
}

function insertWorkRow(manager: EntityManager, name: string): Promise<unknown> {
  return manager.createQueryBuilder().insert().into('work_row').values({ name }).execute();
}

describe.each(ENGINES)('SPEC 4.10 commitWithLocks and work that catches its own failures, on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'commit_truth');
    await createScratchTable(dataSource, 'work_row', [
      { name: 'name', type: 'varchar', length: '64', isPrimary: true },
    ]);
    service = new SlotLockService(dataSource);
  });
  afterAll(() => dataSource?.destroy());
  beforeEach(async () => {
    await dataSource.query('DELETE FROM drydock_slotlock');
    await dataSource.query('DELETE FROM work_row');
  });

  test('a failure inside a savepoint that work rolled back leaves the unit whole: it commits', async () => {
    const result = await service.commitWithLocks(OWNER, ['unit(1)'], async (manager) => {
      await insertWorkRow(manager, 'kept');
      await manager
        .transaction((inner) => insertWorkRow(inner, 'kept')) // a duplicate key, in a savepoint
        .catch(() => undefined);
      return 'done';
    });
    expect(result).toBe('done');
    expect(await workRows(dataSource)).toEqual(['kept']);
    expect(await service.isLockFree('unit(1)')).toBe(false);
  });

  if (engine.name !== 'sqlite') {
    test('a failure work caught on the unit’s raw driver connection: rejects, nothing committed', async () => {
      // PostgreSQL: any failure aborts the transaction. MySQL: ROLLBACK on the raw connection
      // ends it as a deadlock would; the statements after it run in autocommit.
      const ending = engine.name === 'postgres' ? 'SELECT 1 / 0' : 'ROLLBACK';
      const outcome = await service
        .commitWithLocks(OWNER, ['unit(raw)'], async (manager) => {
          await insertWorkRow(manager, 'lost');
          const connection = (await manager.queryRunner!.connect()) as {
            query(sql: string, callback?: (error: unknown) => void): unknown;
          };
          await new Promise<void>((resolve) => {
            const done = (): void => resolve();
            const sent = connection.query(ending, done); // mysql2: callback; pg: a promise as well
            if (sent instanceof Promise) sent.then(done, done);
          });
          return 'done';
        })
        .catch((e: unknown) => e);
      expect(outcome).toBeInstanceOf(Error);
      expect((outcome as Error).message).toMatch(/no longer open when work returned/);
      expect(await workRows(dataSource)).toEqual([]);
      expect(await service.isLockFree('unit(raw)')).toBe(true);
    });
  }

  if (engine.name === 'postgres') {
    test('a failure work caught outside a savepoint: rejects with that error, nothing committed', async () => {
      const outcome = await service
        .commitWithLocks(OWNER, ['unit(2)'], async (manager) => {
          await insertWorkRow(manager, 'lost');
          await manager.query('SELECT 1 / 0').catch(() => undefined); // aborts the transaction
          return 'done';
        })
        .catch((e: unknown) => e);
      expect(outcome).toBeInstanceOf(QueryFailedError);
      expect((outcome as QueryFailedError & { driverError: { code: string } }).driverError.code).toBe('22012');
      expect(await workRows(dataSource)).toEqual([]);
      expect(await service.isLockFree('unit(2)')).toBe(true);
    });
  } else {
    test('a failure work caught outside a savepoint leaves the transaction open here: it commits', async () => {
      const result = await service.commitWithLocks(OWNER, ['unit(2)'], async (manager) => {
        await insertWorkRow(manager, 'kept');
        await insertWorkRow(manager, 'kept').catch(() => undefined); // duplicate key: only the statement fails
        return 'done';
      });
      expect(result).toBe('done');
      expect(await workRows(dataSource)).toEqual(['kept']);
      expect(await service.isLockFree('unit(2)')).toBe(false);
    });
  }
});

for (const engine of ENGINES.filter((candidate) => candidate.name === 'mariadb')) {
  describe(`SPEC 4.10 commitWithLocks when work caught a deadlock, on ${engine.name}`, () => {
    let dataSource: DataSource;
    let service: SlotLockService;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, 'commit_truth_deadlock');
      service = new SlotLockService(dataSource);
    });
    afterAll(() => dataSource?.destroy());

    test('the rolled-back attempt is not reported as committed: the unit runs again and commits', async () => {
      const [first, second] = keysInIndexOrder('work.deadlock(a)', 'work.deadlock(b)');
      const insertAs = (runner: { query: DataSource['query'] }, owner: string, key: string): Promise<unknown> =>
        runner.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
          owner,
          digestForIndex(key),
          key,
        ]);
      let attempts = 0;
      let caught: unknown;
      const result = await service.commitWithLocks(OWNER, ['unit(deadlock)'], async (manager) => {
        attempts += 1;
        if (attempts === 1) {
          // The rival (many rows: InnoDB picks the smaller side as the victim) holds `second`;
          // work takes `first`, waits for `second`; the rival asks for `first`: deadlock, work loses.
          const rival = await heavyTransaction(dataSource, 'PHID-DRYL-rival', [second]);
          try {
            await insertAs(manager, 'PHID-DRYL-work', first);
            const blocked = insertAs(manager, 'PHID-DRYL-work', second).catch((e: unknown) => e);
            await waitForBlockedInsert(dataSource, 'PHID-DRYL-work');
            const rivalInsert = insertAs(rival, 'PHID-DRYL-rival', first);
            caught = await blocked; // work catches the deadlock and carries on
            await rivalInsert;
          } finally {
            await endTransaction(rival);
          }
        }
        // A note of work's: after the deadlock it would commit on its own in autocommit.
        await insertAs(manager, `PHID-DRYL-note-${attempts}`, `note(${attempts})`).catch(() => undefined);
        return attempts;
      });
      expect((caught as { driverError?: { errno?: number } }).driverError?.errno).toBe(1213);
      expect(result).toBe(2);
      expect(await service.isLockFree('unit(deadlock)')).toBe(false);
      // Only the committed attempt's note: the first attempt's was not sent.
      expect(await service.isLockFree('note(1)')).toBe(true);
      expect(await service.isLockFree('note(2)')).toBe(false);
      await service.releaseLocks(OWNER);
      await service.releaseLocks('PHID-DRYL-note-2');
    });
  });
}
