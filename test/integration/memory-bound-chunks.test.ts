import { format as mysqlFormat } from 'mysql2';
import type { DataSource, EntityManager } from 'typeorm';
import { SlotLockException, SlotLockService, digestForIndex } from '../../src';
import { MEMORY_BOUND_BYTES } from '../../src/services/lock-table';
import {
  ENGINES,
  clearLocks,
  countOwned,
  createScratchTable,
  freshEngineDataSource,
  type TestEngine,
} from '../support/engines';
import { QueryLog } from '../support/query-log';

/**
 * Issue 12, item 2: an acquisition's INSERTs are split at MEMORY_BOUND_BYTES (128 KiB),
 * whatever the server's packet size allows, and built one at a time. Each chunked call
 * stays all or nothing, in the service's own transaction and in a caller's, on every
 * engine; a single row larger than the bound goes alone in its statement.
 */

const OWNER = 'PHID-DRYL-chunks';
const HOLDER = 'PHID-DRYL-holder';

/** 300 keys of 1,000 bytes: about 600 KB of hex on MariaDB, 300 KB of parameters elsewhere. */
const keys = Array.from({ length: 300 }, (_, i) => `chunk(${i})`.padEnd(1000, '.'));

function byIndex(list: readonly string[]): string[] {
  return [...list].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1));
}

/** The key whose row the service sends last (the set goes out sorted by lock index). */
const lastKey = byIndex(keys).at(-1)!;

function text(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** What one INSERT carries: its text as sent on MariaDB (mysql2 writes the parameters into it), its parameters elsewhere. */
function payloadBytes(engine: TestEngine, insert: { sql: string; params: unknown[] }): number {
  if (engine.name === 'mariadb')
    return Buffer.byteLength(mysqlFormat(insert.sql, insert.params as Parameters<typeof mysqlFormat>[1]));
  return insert.params.reduce<number>((total, param) => total + Buffer.byteLength(text(param)), 0);
}

/** The keys one INSERT takes, in the order it sends them (owner, index, key per row on every engine). */
function keysOf(insert: { params: unknown[] }): string[] {
  const taken: string[] = [];
  for (let i = 2; i < insert.params.length; i += 3) taken.push(text(insert.params[i]));
  return taken;
}

/** The notes in the journal table, sorted. */
async function journal(db: Pick<DataSource, 'createQueryBuilder'>): Promise<string[]> {
  const rows = await db.createQueryBuilder().select('note').from('journal', 'j').getRawMany<{ note: string }>();
  return rows.map((row) => row.note).sort();
}

function writeJournal(manager: EntityManager, note: string): Promise<unknown> {
  return manager.createQueryBuilder().insert().into('journal').values({ note }).execute();
}

describe.each(ENGINES)('issue 12 item 2: INSERTs bounded by memory, each call all or nothing, on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  const queryLog = new QueryLog();

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'memory_bound', { logger: queryLog, logging: true });
    service = new SlotLockService(dataSource, { maxKeyBytes: 200_000 });
    await createScratchTable(dataSource, 'journal', [{ name: 'note', type: 'varchar', length: '32' }]);
  });
  afterAll(async () => {
    await service?.close();
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    await dataSource.query('DELETE FROM journal');
    queryLog.clear();
  });

  test('the set goes out in several INSERTs of at most 128 KiB each, every key once, in lock-index order', async () => {
    await service.acquireLocks(OWNER, keys);

    const inserts = queryLog.matching('INSERT');
    expect(inserts.length).toBeGreaterThan(1);
    for (const insert of inserts) expect(payloadBytes(engine, insert)).toBeLessThanOrEqual(MEMORY_BOUND_BYTES);
    expect(inserts.flatMap(keysOf)).toEqual(byIndex(keys));
    expect(await countOwned(dataSource, OWNER)).toBe(keys.length);
    expect(await service.releaseLocks(OWNER)).toBe(keys.length);
  });

  test('in the service’s transaction, a conflict on the last INSERT leaves none of the set held', async () => {
    await service.acquireLocks(HOLDER, [lastKey]);
    queryLog.clear();

    const error = await service.acquireLocks(OWNER, keys).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(SlotLockException);
    expect((error as SlotLockException).failure).toBe('held');
    expect((error as SlotLockException).getLockMap()).toEqual({ [lastKey]: HOLDER });
    expect(queryLog.matching('INSERT').length).toBeGreaterThan(1);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await countOwned(dataSource, HOLDER)).toBe(1);
  });

  test('in a caller’s transaction, a conflict on the last INSERT undoes the earlier ones and not the caller’s write', async () => {
    await service.acquireLocks(HOLDER, [lastKey]);
    queryLog.clear();

    let caught: unknown;
    await dataSource.transaction(async (manager) => {
      await writeJournal(manager, 'before');
      caught = await service.acquireLocks(OWNER, keys, { manager }).catch((e: unknown) => e);
      expect(await countOwned(manager, OWNER)).toBe(0);
      // The transaction still works after the failed call (PostgreSQL: through the service's savepoint).
      await writeJournal(manager, 'after');
    });

    expect(caught).toBeInstanceOf(SlotLockException);
    expect((caught as SlotLockException).failure).toBe('held');
    expect((caught as SlotLockException).transactionRolledBack).toBe(false);
    expect(queryLog.matching('INSERT').filter((insert) => keysOf(insert).length > 0).length).toBeGreaterThan(1);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await journal(dataSource)).toEqual(['after', 'before']);
  });

  test('in a caller’s transaction, the chunked locks commit with the caller’s write, or roll back with it', async () => {
    await dataSource.transaction(async (manager) => {
      await service.acquireLocks(OWNER, keys, { manager });
      await writeJournal(manager, 'kept');
    });
    expect(await countOwned(dataSource, OWNER)).toBe(keys.length);
    expect(await service.releaseLocks(OWNER)).toBe(keys.length);

    const rolledBack = await dataSource
      .transaction(async (manager) => {
        await service.acquireLocks(OWNER, keys, { manager });
        await writeJournal(manager, 'gone');
        throw new Error('the caller changes its mind');
      })
      .catch((e: unknown) => e);
    expect((rolledBack as Error).message).toBe('the caller changes its mind');
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await journal(dataSource)).toEqual(['kept']);
  });

  test('commitWithLocks: the chunked locks and the work commit together, or neither when the last INSERT conflicts', async () => {
    await service.commitWithLocks(OWNER, keys, (manager) => writeJournal(manager, 'work'));
    expect(await countOwned(dataSource, OWNER)).toBe(keys.length);
    expect(await journal(dataSource)).toEqual(['work']);
    await service.releaseLocks(OWNER);

    await service.acquireLocks(HOLDER, [lastKey]);
    let worked = false;
    const error = await service
      .commitWithLocks(OWNER, keys, async (manager) => {
        worked = true;
        await writeJournal(manager, 'never');
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SlotLockException);
    expect(worked).toBe(false);
    expect(await countOwned(dataSource, OWNER)).toBe(0);
    expect(await journal(dataSource)).toEqual(['work']);
  });

  test('a key larger than the bound goes alone in its INSERT, and the call stays all or nothing', async () => {
    const big = 'big('.padEnd(150_000, '#') + ')';
    const set = [...keys.slice(0, 50), big];

    await service.acquireLocks(OWNER, set);
    const inserts = queryLog.matching('INSERT');
    const alone = inserts.filter((insert) => keysOf(insert).includes(big));
    expect(alone).toHaveLength(1);
    expect(keysOf(alone[0]!)).toEqual([big]);
    for (const insert of inserts.filter((candidate) => candidate !== alone[0])) {
      expect(payloadBytes(engine, insert)).toBeLessThanOrEqual(MEMORY_BOUND_BYTES);
    }
    expect(await countOwned(dataSource, OWNER)).toBe(set.length);
    expect(await service.releaseLocks(OWNER)).toBe(set.length);

    // Held: whichever of the set's keys goes out last, nothing of the set is left.
    const last = byIndex(set).at(-1)!;
    await service.acquireLocks(HOLDER, [last]);
    await expect(service.acquireLocks(OWNER, set)).rejects.toBeInstanceOf(SlotLockException);
    await dataSource.transaction(async (manager) => {
      await expect(service.acquireLocks(OWNER, set, { manager })).rejects.toBeInstanceOf(SlotLockException);
    });
    expect(await countOwned(dataSource, OWNER)).toBe(0);
  });
});
