import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { ENGINES, clearLocks, createScratchTable, freshEngineDataSource } from '../support/engines';

describe.each(ENGINES)('connections on $name', (engine) => {
  let setup: DataSource;

  beforeAll(async () => {
    setup = await freshEngineDataSource(engine, 'connections');
  });
  afterAll(async () => {
    await setup?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(setup);
  });

  test('a DataSource destroyed and initialized again keeps working through the same service', async () => {
    const dataSource = new DataSource(dataSourceOptionsFromUrl(engine.url('connections')));
    await dataSource.initialize();
    const service = new SlotLockService(dataSource);
    await service.acquireLocks('PHID-A', ['before']);
    await dataSource.destroy();
    await dataSource.initialize();
    try {
      await service.acquireLocks('PHID-A', ['after']);
      expect(await service.releaseLocks('PHID-A')).toBe(2);
    } finally {
      await dataSource.destroy();
    }
  });

  if (engine.name !== 'sqlite') {
    test('conflicts in as many concurrent commitWithLocks as the pool has connections still resolve', async () => {
      const small = new DataSource({
        ...dataSourceOptionsFromUrl(engine.url('connections')),
        poolSize: 2,
      } as DataSourceOptions);
      await small.initialize();
      try {
        const service = new SlotLockService(small);
        await service.acquireLocks('PHID-HOLDER', ['busy']);
        const outcomes = await Promise.all(
          Array.from({ length: 6 }, (_, i) =>
            service.commitWithLocks(`PHID-${i}`, ['busy'], () => 'never').catch((e: unknown) => e),
          ),
        );
        for (const outcome of outcomes) {
          expect(outcome).toBeInstanceOf(SlotLockException);
          expect((outcome as SlotLockException).getLockMap()).toEqual({ busy: 'PHID-HOLDER' });
        }
      } finally {
        await small.destroy();
      }
    });
  }

  if (engine.name === 'sqlite') {
    describe('SPEC 4.11 the app’s transactions and the service’s units on one SQLite file', () => {
      /** The app's DataSource, with a short busy timeout: an app write that must wait fails fast. */
      let app: DataSource;
      let service: SlotLockService;

      beforeAll(async () => {
        app = new DataSource({ ...setup.options, timeout: 300 } as DataSourceOptions);
        await app.initialize();
        await createScratchTable(app, 'app_row', [{ name: 'name', type: 'varchar', length: '64' }]);
        service = new SlotLockService(app);
      });
      afterAll(async () => {
        await service?.close();
        await app?.destroy();
      });
      beforeEach(() => app.query('DELETE FROM app_row'));

      async function appRows(): Promise<string[]> {
        return ((await app.query('SELECT name FROM app_row ORDER BY name')) as Array<{ name: string }>).map(
          (row) => row.name,
        );
      }

      function appInsert(manager: EntityManager, name: string): Promise<unknown> {
        return manager.query('INSERT INTO app_row (name) VALUES (?)', [name]);
      }

      test('the app’s transaction begun while commitWithLocks is in work: neither joins the other', async () => {
        let appOutcome: Promise<unknown> | undefined;
        const unit = service.commitWithLocks('PHID-UNIT', ['shared(1)'], async (manager) => {
          await appInsert(manager, 'work');
          // The app starts its own transaction meanwhile. Its write must wait for the unit's
          // (the file has one writer): better-sqlite3 waits synchronously, the unit cannot
          // finish meanwhile, so after its busy timeout the app's transaction fails whole.
          appOutcome = app.transaction((manager) => appInsert(manager, 'app')).catch((e: unknown) => e);
          await appOutcome;
          return 'unit done';
        });
        await expect(unit).resolves.toBe('unit done');
        const appError = (await appOutcome) as { driverError?: { code?: string } };
        expect(appError.driverError?.code).toMatch(/^SQLITE_BUSY/);
        expect(await appRows()).toEqual(['work']);
        expect((await service.loadHeldLocks(['shared(1)'])).map((lock) => lock.ownerPHID)).toEqual(['PHID-UNIT']);
        await service.releaseLocks('PHID-UNIT');
      });

      test('a commitWithLocks that fails while the app’s transaction runs keeps nothing, and the app keeps its row', async () => {
        await service.acquireLocks('PHID-HOLDER', ['shared(2)']);
        let release: () => void = () => undefined;
        const appCommitted = app.transaction(async (manager) => {
          await appInsert(manager, 'app');
          await new Promise<void>((resolve) => (release = resolve));
        });
        // Started while the app's transaction holds the file's write lock: it waits without
        // blocking the app, which then commits.
        const unit = service
          .commitWithLocks('PHID-UNIT', ['shared(2)'], (manager) => appInsert(manager, 'work'))
          .catch((e: unknown) => e);
        setTimeout(() => release(), 50);
        await appCommitted;
        expect(await unit).toBeInstanceOf(SlotLockException);
        expect(await appRows()).toEqual(['app']);
        expect((await service.loadHeldLocks(['shared(2)'])).map((lock) => lock.ownerPHID)).toEqual(['PHID-HOLDER']);
        await service.releaseLocks('PHID-HOLDER');
      });

      test('the app’s transaction first, then commitWithLocks: both commit, in turn', async () => {
        let release: () => void = () => undefined;
        const appCommitted = app.transaction(async (manager) => {
          await appInsert(manager, 'app');
          await new Promise<void>((resolve) => (release = resolve));
        });
        const unit = service.commitWithLocks('PHID-UNIT', ['shared(3)'], (manager) => appInsert(manager, 'work'));
        setTimeout(() => release(), 50);
        await appCommitted;
        await unit;
        expect(await appRows()).toEqual(['app', 'work']);
        expect(await service.isLockFree('shared(3)')).toBe(false);
        await service.releaseLocks('PHID-UNIT');
      });

      test('the service’s own call inside the app’s transaction stays out of it: the app’s rollback keeps it', async () => {
        const failure = new Error('app failed');
        await expect(
          app.transaction(async (manager) => {
            await service.acquireLocks('PHID-OUTSIDE', ['shared(4)']);
            await appInsert(manager, 'app');
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await appRows()).toEqual([]);
        expect((await service.loadHeldLocks(['shared(4)'])).map((lock) => lock.ownerPHID)).toEqual(['PHID-OUTSIDE']);
        expect(await service.releaseLocks('PHID-OUTSIDE')).toBe(1);
      });

      test('an app transaction that rolls back after the service’s unit committed loses none of the unit', async () => {
        const failure = new Error('app failed');
        await expect(
          app.transaction(async () => {
            await service.commitWithLocks('PHID-UNIT', ['shared(5)'], (manager) => appInsert(manager, 'work'));
            throw failure;
          }),
        ).rejects.toBe(failure);
        expect(await appRows()).toEqual(['work']);
        expect(await service.isLockFree('shared(5)')).toBe(false);
        await service.releaseLocks('PHID-UNIT');
      });
    });

    test('an in-memory database has only the app’s connection: while its transaction is open, the service refuses', async () => {
      const memory = new DataSource({
        ...setup.options,
        database: ':memory:',
        migrationsRun: true,
      } as DataSourceOptions);
      await memory.initialize();
      const service = new SlotLockService(memory);
      try {
        let refused: unknown;
        await memory.transaction(async (manager) => {
          refused = await service.acquireLocks('PHID-OUTSIDE', ['k']).catch((e: unknown) => e);
          await service.acquireLocks('PHID-INSIDE', ['k'], { manager });
        });
        expect(refused).toBeInstanceOf(Error);
        expect((refused as Error).message).toMatch(
          /a transaction is open on this in-memory SQLite DataSource.*pass \{ manager \}/,
        );
        expect((await service.loadHeldLocks(['k'])).map((lock) => lock.ownerPHID)).toEqual(['PHID-INSIDE']);
        await service.releaseLocks('PHID-INSIDE');
        await service.acquireLocks('PHID-OUTSIDE', ['k']);
        expect(await service.releaseLocks('PHID-OUTSIDE')).toBe(1);
      } finally {
        await memory.destroy();
      }
    });
  }
});
