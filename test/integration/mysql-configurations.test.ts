import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockException, SlotLockService } from '../../src';
import { dialectFor } from '../../src/dialects';
import { freshDataSource, setGlobals } from '../support/database';

/**
 * SPEC 4.10 on MariaDB: owners and keys reach the table byte for byte and come back
 * the same, whatever the server's sql_mode or the connection's charset, and no text of
 * theirs is ever read as SQL (issue 9, items 1 and 2).
 */

const OWNER = 'PHID-DRYL-owner';
const OTHER = 'PHID-DRYL-other';
/** Closes the string under backslash escaping, then appends a row of its own and a comment. */
const INJECTION = "x'), (0x6576696c, 0x414141414141414141414141, (SELECT @@version))#";
const TRICKY_KEYS = [INJECTION, 'C:\\build\\01', "it's", 'back\\slash"quote`tick', 'tail\\'];

/** Every row as the bytes stored, in hex, ordered by id. */
async function storedHex(dataSource: DataSource): Promise<Array<{ owner: string; key: string }>> {
  return (await dataSource.query(
    'SELECT HEX(ownerPHID) AS owner, HEX(lockKey) AS `key` FROM drydock_slotlock ORDER BY id',
  )) as Array<{ owner: string; key: string }>;
}

function hex(text: string): string {
  return Buffer.from(text, 'utf8').toString('hex').toUpperCase();
}

/** What a call must have stored: exactly these rows, byte for byte. */
async function expectStored(dataSource: DataSource, rows: Array<[owner: string, key: string]>): Promise<void> {
  const stored = (await storedHex(dataSource)).map((row) => [row.owner, row.key]).sort();
  expect(stored).toEqual(rows.map(([owner, key]) => [hex(owner), hex(key)]).sort());
}

/** A family name with quotes, a backslash, a LIKE wildcard and characters outside latin1. */
const SLOT_NAME = "it's\\_fam%★ą";

/**
 * acquireSlot where the server decides: the dialect's scan from two starts (one wrapping
 * round), then the call itself on both paths, then a full family (three held batches,
 * then the scan finding none).
 */
async function expectSlotScanWorks(dataSource: DataSource, service: SlotLockService): Promise<void> {
  const limit = 50;
  await service.acquireLocks(
    OTHER,
    Array.from({ length: limit }, (_, slot) => slot)
      .filter((slot) => slot !== 37 && slot !== 38)
      .map((slot) => `${SLOT_NAME}.slot(${slot})`),
  );
  const dialect = dialectFor(dataSource);
  for (const [start, expected] of [
    [0, 37],
    [38, 38],
    [40, 37],
  ] as const) {
    const { sql, params } = dialect.selectFirstFreeSlot('drydock_slotlock', `${SLOT_NAME}.slot(`, limit, start);
    const [row] = (await dataSource.query(sql, [...params])) as Array<{ free: unknown }>;
    expect(Number(row!.free)).toBe(expected);
  }
  const first = await service.acquireSlot(OWNER, SLOT_NAME, limit);
  const second = await dataSource.transaction((manager) => service.acquireSlot(OWNER, SLOT_NAME, limit, { manager }));
  expect([first.slot, second.slot].sort()).toEqual([37, 38]);
  await expectStoredKeysInclude(dataSource, [first.lockKey, second.lockKey]);
  const full = (await service
    .acquireSlot('PHID-DRYL-late', SLOT_NAME, limit)
    .catch((e: unknown) => e)) as SlotLockException;
  expect(full).toBeInstanceOf(SlotLockException);
  expect(full.failure).toBe('held');
  for (const key of Object.keys(full.getLockMap())) expect(key.startsWith(`${SLOT_NAME}.slot(`)).toBe(true);
}

async function expectStoredKeysInclude(dataSource: DataSource, keys: string[]): Promise<void> {
  const stored = (await storedHex(dataSource)).map((row) => row.key);
  for (const key of keys) expect(stored).toContain(hex(key));
}

/** Runs the same checks through the service's own path and through a caller's transaction. */
const PATHS = [
  [
    'the service’s own statement',
    (service: SlotLockService, owner: string, keys: string[]) => service.acquireLocks(owner, keys),
  ],
  [
    'a caller’s transaction ({ manager })',
    (service: SlotLockService, owner: string, keys: string[], dataSource?: DataSource) =>
      dataSource!.transaction((manager) => service.acquireLocks(owner, keys, { manager })),
  ],
] as const;

describe.each([
  ['NO_BACKSLASH_ESCAPES', 'NO_BACKSLASH_ESCAPES'],
  ['NO_BACKSLASH_ESCAPES with ANSI_QUOTES', 'NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_TRANS_TABLES'],
  ['a non-strict sql_mode', ''],
])('SPEC 4.10 MariaDB with sql_mode %s', (_label, sqlMode) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  let restore: () => Promise<void>;

  beforeAll(async () => {
    restore = await setGlobals({ sql_mode: sqlMode });
    dataSource = await freshDataSource('config_sql_mode');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await restore?.();
  });
  beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));

  test('acquireSlot of a family with quotes, a backslash and wildcards in its name: the server’s scan, both paths', async () => {
    await expectSlotScanWorks(dataSource, service);
  });

  test('every connection of the DataSource runs in that sql_mode', async () => {
    const [row] = (await dataSource.query('SELECT @@SESSION.sql_mode AS mode')) as Array<{ mode: string }>;
    for (const mode of sqlMode.split(',').filter((m) => m !== '')) expect(row!.mode.split(',')).toContain(mode);
  });

  test.each(PATHS)(
    'through %s, keys with quotes and backslashes are data, stored as written',
    async (_path, acquire) => {
      await acquire(service, OWNER, TRICKY_KEYS, dataSource);
      await expectStored(
        dataSource,
        TRICKY_KEYS.map((key) => [OWNER, key]),
      );
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey).sort()).toEqual([...TRICKY_KEYS].sort());
      expect(await service.releaseLocks(OWNER)).toBe(TRICKY_KEYS.length);
      expect(await storedHex(dataSource)).toEqual([]);
    },
  );

  test('an owner with quotes and backslashes is data too, and releases only its own locks', async () => {
    const owner = "o\\' OR 1=1 #";
    await service.acquireLocks(owner, ['mine']);
    await service.acquireLocks(OTHER, ['theirs']);
    await expectStored(dataSource, [
      [owner, 'mine'],
      [OTHER, 'theirs'],
    ]);
    expect(await service.releaseLocks(owner)).toBe(1);
    await expectStored(dataSource, [[OTHER, 'theirs']]);
  });

  test('a conflict names the holder and the key exactly as written', async () => {
    await service.acquireLocks("o'ther\\", [INJECTION]);
    const error = (await service
      .acquireLocks(OWNER, [INJECTION, 'free'])
      .catch((e: unknown) => e)) as SlotLockException;
    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.getLockMap()).toEqual({ [INJECTION]: "o'ther\\" });
    await expectStored(dataSource, [["o'ther\\", INJECTION]]);
  });
});

describe.each([
  ['latin1', 'latin1'],
  ['utf8 (utf8mb3)', 'utf8'],
])('SPEC 4.10 MariaDB over a %s connection', (_label, charset) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshDataSource('config_charset', { charset } as Partial<DataSourceOptions>);
    service = new SlotLockService(dataSource);
  });
  afterAll(() => dataSource?.destroy());
  beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));

  test('acquireSlot of a family whose name holds characters outside the charset: the server’s scan, both paths', async () => {
    await expectSlotScanWorks(dataSource, service);
  });

  test('the connection really uses that charset', async () => {
    const [row] = (await dataSource.query('SELECT @@character_set_client AS c')) as Array<{ c: string }>;
    expect(row!.c).toBe(charset === 'utf8' ? 'utf8mb3' : 'latin1');
  });

  test.each(PATHS)(
    'through %s, owners and keys outside the charset reach the table byte for byte',
    async (_p, acquire) => {
      const owner = 'PHID-★-😀';
      const keys = ['★', 'host(😀)', 'ключ✓', 'é'];
      await acquire(service, owner, keys, dataSource);
      await expectStored(
        dataSource,
        keys.map((key) => [owner, key]),
      );
    },
  );

  test('they come back as written: loadLocks, loadHeldLocks and the lock map', async () => {
    const owner = 'PHID-★';
    await service.acquireLocks(owner, ['★', 'host(😀)']);
    expect((await service.loadLocks(owner)).map((lock) => [lock.ownerPHID, lock.lockKey]).sort()).toEqual([
      [owner, 'host(😀)'],
      [owner, '★'],
    ]);
    expect((await service.loadHeldLocks(['★'])).map((lock) => lock.ownerPHID)).toEqual([owner]);
    const error = (await service.acquireLocks(OWNER, ['★']).catch((e: unknown) => e)) as SlotLockException;
    expect(error.getLockMap()).toEqual({ '★': owner });
  });

  test('an owner that the charset would map onto another is not merged with it', async () => {
    // In latin1 both are "PHID-?": releasing one must not release the other's locks.
    await service.acquireLocks('PHID-★', ['star']);
    expect(await service.releaseLocks('PHID-ą')).toBe(0);
    expect(await service.isLockFree('star')).toBe(false);
    expect((await service.loadLocks('PHID-ą')).length).toBe(0);
    expect(await service.releaseLocks('PHID-★')).toBe(1);
  });

  test('an owner of 64 bytes of 4-byte characters, on a non-strict server, is stored whole and can release', async () => {
    const restore = await setGlobals({ sql_mode: '' });
    const lax = new DataSource({ ...dataSource.options, migrations: [] } as DataSourceOptions);
    try {
      await lax.initialize();
      const laxService = new SlotLockService(lax);
      const owner = '😀'.repeat(16); // 64 UTF-8 bytes
      await laxService.acquireLocks(owner, ['emoji-owned']);
      await expectStored(lax, [[owner, 'emoji-owned']]);
      expect(await laxService.releaseLocks(owner)).toBe(1);
    } finally {
      await lax.destroy();
      await restore();
    }
  });
});
