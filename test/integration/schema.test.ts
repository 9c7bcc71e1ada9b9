import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  DrydockSlotLock,
  SlotLockException,
  SlotLockService,
  dataSourceOptionsFromUrl,
  digestForIndex,
} from '../../src';
import { allRows, freshDataSource } from '../support/database';
import { ENGINES, freshEngineDataSource } from '../support/engines';
import { phorgeDdl } from '../support/phorge';

async function showCreateTable(dataSource: DataSource): Promise<string> {
  const [row] = (await dataSource.query('SHOW CREATE TABLE drydock_slotlock')) as Array<Record<string, string>>;
  return row!['Create Table']!.replace(/ AUTO_INCREMENT=\d+/, '');
}

describe('SPEC 2 the table', () => {
  let dataSource: DataSource;

  beforeAll(async () => {
    dataSource = await freshDataSource('schema');
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });

  test('2.2 the migration creates the table Phorge creates, byte for byte', async () => {
    const fromMigration = await showCreateTable(dataSource);
    await dataSource.undoLastMigration();
    await dataSource.query(phorgeDdl());
    const fromPhorge = await showCreateTable(dataSource);
    await dataSource.query('DROP TABLE drydock_slotlock');
    await dataSource.runMigrations();

    expect(fromMigration).toBe(fromPhorge);
    expect(fromMigration).toContain('UNIQUE KEY `key_lock` (`lockIndex`)');
  });

  test('2.2 TypeORM sees no difference between the entity and the migrated table', async () => {
    const log = await dataSource.driver.createSchemaBuilder().log();
    expect(log.upQueries.map((query) => query.query)).toEqual([]);
  });

  test('2.2 the migration reverts', async () => {
    await dataSource.undoLastMigration();
    const tables = (await dataSource.query("SHOW TABLES LIKE 'drydock_slotlock'")) as unknown[];
    await dataSource.runMigrations();
    expect(tables).toHaveLength(0);
  });

  test('2.1 the entity maps exactly Phorge columns, names and indexes, and no timestamps', () => {
    const metadata = dataSource.getMetadata(DrydockSlotLock);
    expect(metadata.tableName).toBe('drydock_slotlock');
    expect(
      metadata.columns.map((column) => [column.databaseName, column.type, column.length, column.isNullable]),
    ).toEqual([
      ['id', 'int', '', false],
      ['ownerPHID', 'varbinary', '64', false],
      ['lockIndex', 'binary', '12', false],
      ['lockKey', 'longtext', '', false],
    ]);
    expect(
      metadata.indices.map((index) => [index.name, index.isUnique, index.columns.map((c) => c.databaseName)]),
    ).toEqual(
      expect.arrayContaining([
        ['key_lock', true, ['lockIndex']],
        ['key_owner', false, ['ownerPHID']],
      ]),
    );
    expect(metadata.indices).toHaveLength(2);
  });
});

describe('SPEC 2.3 sharing a table with Phorge', () => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshDataSource('phorge_compat');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await dataSource.query('DELETE FROM drydock_slotlock');
  });

  /** What Phorge's DrydockSlotLock::acquireLocks() sends: literal digests and values. */
  async function insertAsPhorge(owner: string, keys: string[]): Promise<void> {
    const values = keys.map(() => '(?, ?, ?)').join(', ');
    await dataSource.query(
      `INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES ${values}`,
      keys.flatMap((key) => [owner, digestForIndex(key), key]),
    );
  }

  test("Phorge's rows are seen as held, with their owner", async () => {
    await insertAsPhorge('PHID-DRYL-phorgeowner0000000', [
      'workingcopy.lease(PHID-DRYR-aaaaaaaaaaaaaaaaaaaa)',
      'ключ✓',
    ]);

    expect(await service.isLockFree('workingcopy.lease(PHID-DRYR-aaaaaaaaaaaaaaaaaaaa)')).toBe(false);
    const error = await service.acquireLocks('PHID-DRYL-node', ['free-one', 'ключ✓']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlotLockException);
    expect((error as SlotLockException).getLockMap()).toEqual({ 'ключ✓': 'PHID-DRYL-phorgeowner0000000' });
    expect(await service.isLockFree('free-one')).toBe(true);
  });

  test("the entity reads Phorge's rows as strings", async () => {
    await insertAsPhorge('PHID-DRYL-phorgeowner0000000', ['dog']);
    const [row] = await dataSource.getRepository(DrydockSlotLock).find();
    expect(row).toEqual(
      Object.assign(new DrydockSlotLock(), {
        id: expect.any(Number),
        ownerPHID: 'PHID-DRYL-phorgeowner0000000',
        lockIndex: 'Aliif7Qjd5ct',
        lockKey: 'dog',
      }),
    );
  });

  test("the package's rows carry exactly Phorge's digests and bytes", async () => {
    const keys = ['mylock(PHID-XYZQ-abc)', 'mylock(whatever).slot(2)', 'ключ✓', 'emoji 😀'];
    await service.acquireLocks('PHID-DRYL-node', keys);
    const rows = (await dataSource.query(
      'SELECT HEX(ownerPHID) AS owner, CAST(lockIndex AS CHAR) AS lockIndex, HEX(lockKey) AS key_hex FROM drydock_slotlock',
    )) as Array<{ owner: string; lockIndex: string; key_hex: string }>;
    expect(rows).toHaveLength(keys.length);
    for (const row of rows) {
      const key = Buffer.from(row.key_hex, 'hex').toString('utf8');
      expect(keys).toContain(key);
      expect(row.lockIndex).toBe(digestForIndex(key));
      expect(row.key_hex).toBe(Buffer.from(key, 'utf8').toString('hex').toUpperCase());
      expect(row.owner).toBe(Buffer.from('PHID-DRYL-node').toString('hex').toUpperCase());
    }
    expect(rows.find((row) => Buffer.from(row.key_hex, 'hex').toString() === 'mylock(PHID-XYZQ-abc)')?.lockIndex).toBe(
      '3jOUaNzWcHJU',
    );
  });

  test('a Phorge-side release (DELETE by owner) frees what the package took', async () => {
    await service.acquireLocks('PHID-DRYL-node', ['shared(1)']);
    await dataSource.query('DELETE FROM drydock_slotlock WHERE ownerPHID = ?', ['PHID-DRYL-node']);
    expect(await allRows(dataSource)).toEqual([]);
    await expect(service.acquireLocks('PHID-DRYL-other', ['shared(1)'])).resolves.toBeUndefined();
  });

  test('a colliding digest counts as held, and the stored key says by which name', async () => {
    // Forge a Phorge row whose index is the digest of our key but whose key differs.
    await dataSource.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
      'PHID-DRYL-elsewhere',
      digestForIndex('ours'),
      'theirs',
    ]);
    const error = (await service
      .acquireLocks('PHID-DRYL-node', ['ours'])
      .catch((e: unknown) => e)) as SlotLockException;
    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.getLockMap()).toEqual({ theirs: 'PHID-DRYL-elsewhere' });
  });
});

describe.each(ENGINES)('SPEC 2 the table on $name (portable part)', (engine) => {
  let dataSource: DataSource;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'schema_portable');
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });

  test('TypeORM sees no difference between the entity mapping and the migrated table', async () => {
    const log = await dataSource.driver.createSchemaBuilder().log();
    expect(log.upQueries.map((query) => query.query)).toEqual([]);
  });

  test('the same column names and index names as Phorge’s table, and no timestamps', () => {
    const metadata = dataSource.getMetadata(DrydockSlotLock);
    expect(metadata.tableName).toBe('drydock_slotlock');
    expect(metadata.columns.map((column) => column.databaseName)).toEqual(['id', 'ownerPHID', 'lockIndex', 'lockKey']);
    expect(
      metadata.indices.map((index) => [index.name, index.isUnique, index.columns.map((c) => c.databaseName)]).sort(),
    ).toEqual([
      ['key_lock', true, ['lockIndex']],
      ['key_owner', false, ['ownerPHID']],
    ]);
  });

  test('lockIndex compares byte-exact: two indexes differing only in case are two locks', async () => {
    const repository = dataSource.getRepository(DrydockSlotLock);
    await repository.insert({ ownerPHID: 'PHID-A', lockIndex: 'aaaaaaaaaaaa', lockKey: 'lower' });
    await repository.insert({ ownerPHID: 'PHID-B', lockIndex: 'AAAAAAAAAAAA', lockKey: 'upper' });
    expect(await repository.countBy({ lockIndex: 'aaaaaaaaaaaa' })).toBe(1);
    await expect(
      repository.insert({ ownerPHID: 'PHID-C', lockIndex: 'aaaaaaaaaaaa', lockKey: 'again' }),
    ).rejects.toThrow();
    await repository.clear();
  });

  test('the migrations revert, the session table first, and run again', async () => {
    const runner = dataSource.createQueryRunner();
    try {
      await dataSource.undoLastMigration();
      expect([await runner.hasTable('drydock_slotlock_session'), await runner.hasTable('drydock_slotlock')]).toEqual([
        false,
        true,
      ]);
      await dataSource.undoLastMigration();
      expect(await runner.hasTable('drydock_slotlock')).toBe(false);
      await dataSource.runMigrations();
      expect([await runner.hasTable('drydock_slotlock_session'), await runner.hasTable('drydock_slotlock')]).toEqual([
        true,
        true,
      ]);
    } finally {
      await runner.release();
    }
  });
});

/**
 * SPEC 4.10 on PostgreSQL: a DataSource with a `schema` keeps its locks in that schema,
 * where its migrations created the table, and never in a table of the same name on
 * the search path (issue 9, item 7).
 */

async function countRows(dataSource: DataSource, table: string): Promise<number> {
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
      expect(await countRows(plain, 'locks.drydock_slotlock')).toBe(1);
      expect((await service.loadLocks('PHID-schema')).map((lock) => lock.lockKey)).toEqual(['in-schema']);
      expect(await service.releaseLocks('PHID-schema')).toBe(1);
    });

    test('a schema whose name needs quoting (my-schema) works the same', async () => {
      await plain.query('CREATE SCHEMA IF NOT EXISTS "my-schema"');
      const hyphenated = new DataSource({ ...plain.options, schema: 'my-schema' } as DataSourceOptions);
      await hyphenated.initialize();
      try {
        await hyphenated.runMigrations();
        const slotLocks = new SlotLockService(hyphenated);
        await slotLocks.acquireLocks('PHID-hyphen', ['quoted']);
        expect(await countRows(plain, '"my-schema".drydock_slotlock')).toBe(1);
        expect(await slotLocks.releaseLocks('PHID-hyphen')).toBe(1);
      } finally {
        await hyphenated.destroy();
      }
    });

    test('a public.drydock_slotlock on the search path gets none of its locks', async () => {
      await plain.runMigrations(); // creates public.drydock_slotlock (and public.migrations)
      expect(await countRows(plain, 'public.drydock_slotlock')).toBe(0);
      await service.acquireLocks('PHID-schema', ['not-in-public']);
      await service.acquireSlot('PHID-schema', 'family', 2);
      expect(await countRows(plain, 'public.drydock_slotlock')).toBe(0);
      expect(await countRows(plain, 'locks.drydock_slotlock')).toBe(2);
      expect(await service.isLockFree('not-in-public')).toBe(false);
      await schemed.transaction((manager) => service.acquireLocks('PHID-tx', ['in-tx'], { manager }));
      expect(await countRows(plain, 'locks.drydock_slotlock')).toBe(3);
      expect(await service.releaseLocks('PHID-schema')).toBe(2);
      expect(await service.releaseLocks('PHID-tx')).toBe(1);
    });
  });
}
