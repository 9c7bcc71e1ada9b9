import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { ENGINES, clearLocks, createScratchTable, freshEngineDataSource, lockRows } from '../support/engines';

/**
 * A call made as another request would make it: outside the async context of whatever
 * calls `start()` (a service unit tells its own nested calls apart by that context).
 */
function outsideTheUnit<T>(call: () => Promise<T>): { start: () => void; started: Promise<T> } {
  let start: () => void = () => undefined;
  const go = new Promise<void>((resolve) => (start = resolve));
  return { start, started: go.then(call) };
}

/** How many file descriptors of this process point at `file` (Linux: /proc/self/fd). */
function openDescriptorsOf(file: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // closed while listing
    }
  }).length;
}

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

    describe('SPEC 4.11 the service’s own connection follows the app’s', () => {
      const work = path.join(tmpdir(), `slotlock-own-${process.pid}`);
      beforeEach(() => {
        rmSync(work, { recursive: true, force: true });
        mkdirSync(path.join(work, 'elsewhere'), { recursive: true });
      });
      afterAll(() => rmSync(work, { recursive: true, force: true }));

      async function open(file: string): Promise<DataSource> {
        const dataSource = new DataSource({ ...setup.options, database: file } as DataSourceOptions);
        await dataSource.initialize();
        await dataSource.runMigrations();
        return dataSource;
      }

      test('a relative path, then another working directory: the service uses the app’s file', async () => {
        const cwd = process.cwd();
        process.chdir(work);
        let app: DataSource | undefined;
        const service = () => new SlotLockService(app!);
        try {
          app = await open('relative.sqlite');
          process.chdir(path.join(work, 'elsewhere'));
          const slotLocks = service();
          await slotLocks.acquireLocks('PHID-SERVICE', ['host(7)']);
          await expect(
            app.transaction((manager) => slotLocks.acquireLocks('PHID-APP', ['host(7)'], { manager })),
          ).rejects.toBeInstanceOf(SlotLockException);
          expect((await lockRows(app)).map((row) => row.ownerPHID)).toEqual(['PHID-SERVICE']);
          expect(existsSync(path.join(work, 'elsewhere', 'relative.sqlite'))).toBe(false);
          await slotLocks.close();
        } finally {
          process.chdir(cwd);
          await app?.destroy();
        }
      });

      test('the app’s DataSource destroyed, its file replaced, initialized again: the service follows', async () => {
        const file = path.join(work, 'replaced.sqlite');
        const app = await open(file);
        const slotLocks = new SlotLockService(app);
        try {
          await slotLocks.acquireLocks('PHID-1', ['before']);
          await app.destroy();
          for (const suffix of ['', '-wal', '-shm']) rmSync(file + suffix, { force: true });
          await app.initialize();
          await app.runMigrations();
          expect(await slotLocks.isLockFree('before')).toBe(true);
          await slotLocks.acquireLocks('PHID-2', ['after']);
          expect((await lockRows(app)).map((row) => row.lockKey)).toEqual(['after']);
        } finally {
          await slotLocks.close();
          await app.destroy();
        }
      });

      test('two services on one DataSource share one connection: each accepts the other’s managers', async () => {
        const app = await open(path.join(work, 'two.sqlite'));
        const first = new SlotLockService(app);
        const second = new SlotLockService(app);
        try {
          const result = await first.commitWithLocks('PHID-A', ['a'], async (manager) => {
            await second.acquireLocks('PHID-B', ['b'], { manager });
            await second.acquireLocks('PHID-C', ['c']); // nested in the unit, not waiting for it
            return 'done';
          });
          expect(result).toBe('done');
          expect((await lockRows(app)).map((row) => row.lockKey).sort()).toEqual(['a', 'b', 'c']);
        } finally {
          await first.close();
          await app.destroy();
        }
      });

      test('a call that waits for a unit which awaits it gives up after the busy timeout, and the unit commits', async () => {
        const app = new DataSource({
          ...setup.options,
          database: path.join(work, 'wait.sqlite'),
          timeout: 300,
        } as DataSourceOptions);
        await app.initialize();
        await app.runMigrations();
        const slotLocks = new SlotLockService(app);
        try {
          // Started by another request (outside the unit), then awaited by the unit: it queues behind it.
          const { start, started } = outsideTheUnit(() =>
            slotLocks.acquireLocks('PHID-O', ['o'], { retry: { attempts: 1 } }),
          );
          const unit = slotLocks.commitWithLocks('PHID-U', ['u'], () => {
            start();
            return started.catch((e: unknown) => e);
          });
          const waited = (await unit) as SlotLockException;
          expect(waited).toBeInstanceOf(SlotLockException);
          expect(waited.failure).toBe('contention');
          expect(await slotLocks.isLockFree('u')).toBe(false);
          expect(await slotLocks.isLockFree('o')).toBe(true);
        } finally {
          await slotLocks.close();
          await app.destroy();
        }
      });

      test('a writer holding the file: each attempt waits up to the busy timeout, without blocking the event loop', async () => {
        const file = path.join(work, 'held.sqlite');
        const app = new DataSource({ ...setup.options, database: file, timeout: 300 } as DataSourceOptions);
        await app.initialize();
        await app.runMigrations();
        // Another connection to the file (as another process would hold it) keeps the write lock.
        const other = new DataSource({ ...setup.options, database: file, migrations: [] } as DataSourceOptions);
        await other.initialize();
        const slotLocks = new SlotLockService(app);
        const holder = other.createQueryRunner();
        let ticks = 0;
        const ticker = setInterval(() => (ticks += 1), 10);
        try {
          await holder.startTransaction();
          await holder.query('INSERT INTO drydock_slotlock ("ownerPHID", "lockIndex", "lockKey") VALUES (?, ?, ?)', [
            'PHID-HOLDER',
            'zzzzzzzzzzzz',
            'held-elsewhere',
          ]);
          const started = Date.now();
          const error = (await slotLocks
            .acquireLocks('PHID-W', ['w'], { retry: { attempts: 2, baseDelayMs: 0, maxDelayMs: 0 } })
            .catch((e: unknown) => e)) as SlotLockException;
          const elapsed = Date.now() - started;
          expect(error).toBeInstanceOf(SlotLockException);
          expect(error.failure).toBe('contention');
          expect(error.attempts).toBe(2);
          // Two attempts of one busy timeout each; better-sqlite3's own wait would have frozen the timer.
          expect(elapsed).toBeGreaterThanOrEqual(550);
          expect(ticks).toBeGreaterThan(20);
        } finally {
          clearInterval(ticker);
          await holder.rollbackTransaction();
          await holder.release();
          await other.destroy();
          await slotLocks.close();
          await app.destroy();
        }
      });

      test('close() while the first call opens the connection: the call ends first, then nothing is left open', async () => {
        const file = path.join(work, 'closing.sqlite');
        const app = await open(file);
        const slotLocks = new SlotLockService(app);
        const inFlight = slotLocks.acquireLocks('PHID-F', ['f']);
        await slotLocks.close();
        await expect(inFlight).resolves.toBeUndefined();
        await app.destroy();
        expect(openDescriptorsOf(file)).toBe(0);
      });
    });

    test('an in-memory database: the app’s transaction begun while a unit runs is refused, not nested in it', async () => {
      const memory = new DataSource({
        ...setup.options,
        database: ':memory:',
        migrationsRun: true,
      } as DataSourceOptions);
      await memory.initialize();
      await createScratchTable(memory, 'app_row', [{ name: 'name', type: 'varchar', length: '64' }]);
      const service = new SlotLockService(memory);
      try {
        for (const workThrows of [true, false]) {
          // Another request's transaction, begun while the unit's work runs.
          const { start, started } = outsideTheUnit(() =>
            memory.transaction((appManager) => appManager.query('INSERT INTO app_row (name) VALUES (?)', ['app'])),
          );
          const appOutcome = started.catch((e: unknown) => e);
          const unit = service
            .commitWithLocks(`PHID-${String(workThrows)}`, [`k(${String(workThrows)})`], async (manager) => {
              await manager.query('INSERT INTO app_row (name) VALUES (?)', ['work']);
              start();
              await appOutcome;
              if (workThrows) throw new Error('work failed');
              return 'done';
            })
            .catch((e: unknown) => e);
          const outcome = await unit;
          expect(String(await appOutcome)).toMatch(
            /a transaction cannot begin or end on this in-memory SQLite DataSource/,
          );
          const rows = (await memory.query('SELECT name FROM app_row')) as Array<{ name: string }>;
          expect(rows.map((row) => row.name)).toEqual(workThrows ? [] : ['work']);
          if (workThrows) expect(String(outcome)).toMatch(/work failed/);
          else expect(outcome).toBe('done');
          await memory.query('DELETE FROM app_row');
        }
      } finally {
        await memory.destroy();
      }
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
