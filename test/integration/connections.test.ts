import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { ENGINES, clearLocks, freshEngineDataSource } from '../support/engines';

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
    test('while a transaction is open on the one SQLite connection, the service says so instead of joining it', async () => {
      const service = new SlotLockService(setup);
      let refused: unknown;
      await setup.transaction(async (manager) => {
        refused = await service.acquireLocks('PHID-OUTSIDE', ['k']).catch((e: unknown) => e);
        await service.acquireLocks('PHID-INSIDE', ['k'], { manager });
      });
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toMatch(/a transaction is open on this SQLite DataSource.*pass \{ manager \}/);
      expect((await service.loadHeldLocks(['k'])).map((lock) => lock.ownerPHID)).toEqual(['PHID-INSIDE']);
      // And nothing is stuck afterwards.
      await service.releaseLocks('PHID-INSIDE');
      await service.acquireLocks('PHID-OUTSIDE', ['k']);
      expect(await service.releaseLocks('PHID-OUTSIDE')).toBe(1);
    });
  }
});
