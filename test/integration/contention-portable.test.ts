import Database from 'better-sqlite3';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl, digestForIndex, sqlitePath } from '../../src';
import { ENGINES, clearLocks, createScratchTable, freshEngineDataSource } from '../support/engines';

const OWNER = 'PHID-DRYL-waiter';
const RIVAL = 'PHID-DRYL-rival';

/** Resolves once a PostgreSQL backend waits for a lock (pg_stat_activity). */
async function waitForPostgresLockWait(dataSource: DataSource): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    const rows = (await dataSource.query(
      "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
    )) as unknown[];
    if (rows.length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no PostgreSQL backend started waiting for a lock');
}

// Contention as each engine shows it: PostgreSQL lock timeouts and holders that commit
// mid-insert, SQLite's SQLITE_BUSY. (MariaDB's deadlocks have their own file.)
for (const postgres of ENGINES.filter((engine) => engine.name === 'postgres'))
  describe('SPEC 4.4 contention on postgres', () => {
    let dataSource: DataSource;
    let service: SlotLockService;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(postgres, 'contention_pg');
      service = new SlotLockService(dataSource);
      await createScratchTable(dataSource, 'lease', [{ name: 'phid', type: 'varchar', length: '64' }]);
    });
    afterAll(async () => {
      await dataSource?.destroy();
    });
    beforeEach(async () => {
      await clearLocks(dataSource);
    });

    async function rivalHolding(key: string) {
      const rival = dataSource.createQueryRunner();
      await rival.startTransaction();
      await rival.query('INSERT INTO drydock_slotlock ("ownerPHID", "lockIndex", "lockKey") VALUES ($1, $2, $3)', [
        RIVAL,
        digestForIndex(key),
        key,
      ]);
      return rival;
    }

    test('a holder that commits while the insert waits: 23505 becomes a SlotLockException, and the caller’s transaction stays usable', async () => {
      const rival = await rivalHolding('pg(1)');
      let caught: unknown;
      const unit = dataSource.transaction(async (manager) => {
        caught = await service.acquireLocks(OWNER, ['pg(1)'], { manager }).catch((e: unknown) => e);
        await manager.createQueryBuilder().insert().into('lease').values({ phid: 'after' }).execute();
      });
      await waitForPostgresLockWait(dataSource);
      await rival.commitTransaction();
      await rival.release();
      await unit;

      expect(caught).toBeInstanceOf(SlotLockException);
      expect((caught as SlotLockException).getLockMap()).toEqual({ 'pg(1)': RIVAL });
      expect(((caught as SlotLockException).cause as { code?: string }).code).toBe('23505');
      expect(await dataSource.createQueryBuilder().select('phid').from('lease', 'l').getRawMany()).toEqual([
        { phid: 'after' },
      ]);
    });

    describe('with lock_timeout = 300 ms', () => {
      let impatient: DataSource;
      let impatientService: SlotLockService;

      beforeAll(async () => {
        impatient = new DataSource({
          ...dataSourceOptionsFromUrl(postgres.url('contention_pg')),
          extra: { options: '-c lock_timeout=300' },
        } as DataSourceOptions);
        await impatient.initialize();
        impatientService = new SlotLockService(impatient);
      });
      afterAll(async () => {
        await impatient?.destroy();
      });

      test('a lock timeout (55P03) is retried until the holder goes away', async () => {
        const rival = await rivalHolding('pg(2)');
        const outcome = impatientService.acquireLocks(OWNER, ['pg(2)'], { retry: { attempts: 50, maxDelayMs: 50 } });
        await new Promise((resolve) => setTimeout(resolve, 800));
        await rival.rollbackTransaction();
        await rival.release();
        await expect(outcome).resolves.toBeUndefined();
        expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['pg(2)']);
      });

      test('when retries run out: SlotLockException with the 55P03 as cause', async () => {
        const rival = await rivalHolding('pg(3)');
        try {
          const error = (await impatientService
            .acquireLocks(OWNER, ['pg(3)'], { retry: { attempts: 1 } })
            .catch((e: unknown) => e)) as SlotLockException;
          expect(error).toBeInstanceOf(SlotLockException);
          expect(error.failure).toBe('contention');
          expect((error.cause as { code?: string }).code).toBe('55P03');
        } finally {
          await rival.rollbackTransaction();
          await rival.release();
        }
      });
    });
  });

for (const sqlite of ENGINES.filter((engine) => engine.name === 'sqlite'))
  describe('SPEC 4.4 contention on sqlite', () => {
    let dataSource: DataSource;
    let service: SlotLockService;
    let file: string;

    beforeAll(async () => {
      const setup = await freshEngineDataSource(sqlite, 'contention_sqlite');
      await setup.destroy();
      file = sqlitePath(sqlite.url('contention_sqlite'));
      // A short busy timeout, so a writer that waits for another process gives up fast.
      dataSource = new DataSource({
        ...dataSourceOptionsFromUrl(sqlite.url('contention_sqlite')),
        timeout: 100,
      } as DataSourceOptions);
      await dataSource.initialize();
      service = new SlotLockService(dataSource);
    });
    afterAll(async () => {
      await dataSource?.destroy();
    });

    /** Another connection to the file holding its write lock, as another process would. */
    function rivalWriter(): Database.Database {
      const rival = new Database(file);
      rival.pragma('journal_mode = WAL');
      rival.exec('BEGIN IMMEDIATE');
      return rival;
    }

    test('SQLITE_BUSY is retried until the other writer commits', async () => {
      const rival = rivalWriter();
      const outcome = service.acquireLocks(OWNER, ['sqlite(1)'], { retry: { attempts: 50, maxDelayMs: 50 } });
      await new Promise((resolve) => setTimeout(resolve, 500));
      rival.exec('COMMIT');
      rival.close();
      await expect(outcome).resolves.toBeUndefined();
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual(['sqlite(1)']);
    });

    test('when retries run out: SlotLockException with SQLITE_BUSY as cause', async () => {
      const rival = rivalWriter();
      try {
        const error = (await service
          .acquireLocks(OWNER, ['sqlite(2)'], { retry: { attempts: 2 } })
          .catch((e: unknown) => e)) as SlotLockException;
        expect(error).toBeInstanceOf(SlotLockException);
        expect(error.failure).toBe('contention');
        expect((error.cause as { code?: string }).code).toMatch(/^SQLITE_BUSY/);
      } finally {
        rival.exec('ROLLBACK');
        rival.close();
      }
    });
  });
