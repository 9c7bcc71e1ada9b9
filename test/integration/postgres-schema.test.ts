import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import { ENGINES } from '../support/engines';

/**
 * SPEC 4.10 on PostgreSQL: a DataSource with a `schema` keeps its locks in that schema,
 * where its migrations created the table, and never in a table of the same name on
 * the search path (issue 9, item 7).
 */

async function count(dataSource: DataSource, table: string): Promise<number> {
  const [row] = (await dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`)) as Array<{ n: string }>;
  return Number(row!.n);
}

for (const engine of ENGINES.filter((candidate) => candidate.name === 'postgres')) {
  describe(`SPEC 4.10 a DataSource with schema: 'locks', on ${engine.name}`, () => {
    let plain: DataSource;
    let schemed: DataSource;
    let service: SlotLockService;

    beforeAll(async () => {
      // Not migrated: public.drydock_slotlock does not exist until the second test makes it.
      await engine.recreate('pg_schema');
      plain = new DataSource(dataSourceOptionsFromUrl(engine.url('pg_schema')));
      await plain.initialize();
      await plain.query('CREATE SCHEMA locks');
      schemed = new DataSource({ ...plain.options, schema: 'locks' } as DataSourceOptions);
      await schemed.initialize();
      await schemed.runMigrations();
      service = new SlotLockService(schemed);
    });
    afterAll(async () => {
      await schemed?.destroy();
      await plain?.destroy();
    });

    test('the migration made locks.drydock_slotlock, and the service uses it', async () => {
      await service.acquireLocks('PHID-schema', ['in-schema']);
      expect(await count(plain, 'locks.drydock_slotlock')).toBe(1);
      expect((await service.loadLocks('PHID-schema')).map((lock) => lock.lockKey)).toEqual(['in-schema']);
      expect(await service.releaseLocks('PHID-schema')).toBe(1);
    });

    test('a public.drydock_slotlock on the search path gets none of its locks', async () => {
      await plain.runMigrations(); // creates public.drydock_slotlock (and public.migrations)
      expect(await count(plain, 'public.drydock_slotlock')).toBe(0);
      await service.acquireLocks('PHID-schema', ['not-in-public']);
      await service.acquireSlot('PHID-schema', 'family', 2);
      expect(await count(plain, 'public.drydock_slotlock')).toBe(0);
      expect(await count(plain, 'locks.drydock_slotlock')).toBe(2);
      expect(await service.isLockFree('not-in-public')).toBe(false);
      await schemed.transaction((manager) => service.acquireLocks('PHID-tx', ['in-tx'], { manager }));
      expect(await count(plain, 'locks.drydock_slotlock')).toBe(3);
      expect(await service.releaseLocks('PHID-schema')).toBe(2);
      expect(await service.releaseLocks('PHID-tx')).toBe(1);
    });
  });
}
