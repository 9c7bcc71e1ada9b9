import { DataSource } from 'typeorm';
import { SlotLockService } from '../../src';
import { allRows, dataSourceOptions, freshDataSource, testDatabaseName, withAdmin } from '../support/database';
import { ENGINES, clearLocks, freshEngineDataSource, lockRows } from '../support/engines';
import { QueryLog } from '../support/query-log';

const OWNER = 'PHID-DRYL-owner';
const LONE_HIGH = 'key\uD800';
const LONE_LOW = '\uDC00key';
const OWNER_65_BYTES = 'P'.repeat(65);
const OWNER_64_BYTES_MULTIBYTE = 'é'.repeat(32); // 64 UTF-8 bytes, 32 characters

type Case = [
  label: string,
  call: (service: SlotLockService) => Promise<unknown>,
  error: ErrorConstructor,
  message: RegExp,
];

/** Every bad input of SPEC 5, through every public method that takes it. */
const CASES: Case[] = [
  [
    'owner not a string',
    (s) => s.acquireLocks(42 as unknown as string, ['k']),
    TypeError,
    /^ownerPHID must be a string, got number/,
  ],
  ['owner null', (s) => s.releaseLocks(null as unknown as string), TypeError, /^ownerPHID must be a string, got null/],
  ['owner empty', (s) => s.acquireLocks('', ['k']), RangeError, /^ownerPHID must not be empty/],
  [
    'owner of 65 bytes',
    (s) => s.acquireLocks(OWNER_65_BYTES, ['k']),
    RangeError,
    /^ownerPHID must be at most 64 UTF-8 bytes .*got 65/,
  ],
  [
    'owner of 66 bytes in 33 characters',
    (s) => s.acquireLocks('é'.repeat(33), ['k']),
    RangeError,
    /^ownerPHID must be at most 64 UTF-8 bytes/,
  ],
  [
    'owner with a lone surrogate',
    (s) => s.acquireLocks('PHID\uD800', ['k']),
    RangeError,
    /^ownerPHID must not contain a lone UTF-16 surrogate/,
  ],
  [
    'keys as one string',
    (s) => s.acquireLocks(OWNER, 'k' as unknown as string[]),
    TypeError,
    /^lockKeys must be an array of strings, got a string/,
  ],
  [
    'keys as a String object',
    (s) => s.acquireLocks(OWNER, new String('ab') as unknown as string[]),
    TypeError,
    /^lockKeys must be an array of strings, got a string/,
  ],
  [
    'keys not iterable',
    (s) => s.acquireLocks(OWNER, 7 as unknown as string[]),
    TypeError,
    /^lockKeys must be an array/,
  ],
  [
    'a key not a string',
    (s) => s.acquireLocks(OWNER, ['ok', 5 as unknown as string]),
    TypeError,
    /^lockKeys\[1\] must be a string, got number/,
  ],
  ['an empty key', (s) => s.acquireLocks(OWNER, ['ok', '']), RangeError, /^lockKeys\[1\] must not be empty/],
  [
    'a lone high surrogate',
    (s) => s.acquireLocks(OWNER, [LONE_HIGH]),
    RangeError,
    /^lockKeys\[0\] must not contain a lone UTF-16 surrogate/,
  ],
  [
    'a lone low surrogate',
    (s) => s.acquireLocks(OWNER, ['fine', LONE_LOW]),
    RangeError,
    /^lockKeys\[1\] must not contain a lone UTF-16 surrogate/,
  ],
  [
    'a key over maxKeyBytes',
    (s) => s.acquireLocks(OWNER, ['x'.repeat(65536)]),
    RangeError,
    /^lockKeys\[0\] must be at most 65535 UTF-8 bytes/,
  ],
  [
    'the last key bad, the first fine',
    (s) => s.acquireLocks(OWNER, ['fine', 'also fine', '']),
    RangeError,
    /^lockKeys\[2\]/,
  ],
  [
    'an array with a hole, [, key] (item 13 of issue 9)',
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    (s) => s.acquireLocks(OWNER, [, 'k12'] as unknown as string[]),
    TypeError,
    /^lockKeys\[0\] must be a string, got undefined/,
  ],
  [
    'an array with a hole after a good key',
    (s) => s.acquireLocks(OWNER, Object.assign(new Array<string>(3), { 0: 'a', 2: 'c' })),
    TypeError,
    /^lockKeys\[1\] must be a string, got undefined/,
  ],
  [
    'loadHeldLocks with a hole',
    // eslint-disable-next-line no-sparse-arrays -- the hole is the point
    (s) => s.loadHeldLocks(['k', , 'l'] as unknown as string[]),
    TypeError,
    /^lockKeys\[1\] must be a string, got undefined/,
  ],
  ['limit zero', (s) => s.acquireSlot(OWNER, 'pool', 0), RangeError, /^limit must be a positive integer, got 0/],
  ['limit fractional', (s) => s.acquireSlot(OWNER, 'pool', 1.5), RangeError, /^limit must be a positive integer/],
  ['limit NaN', (s) => s.acquireSlot(OWNER, 'pool', Number.NaN), RangeError, /^limit must be a positive integer/],
  [
    'limit a string',
    (s) => s.acquireSlot(OWNER, 'pool', '3' as unknown as number),
    TypeError,
    /^limit must be a number, got string/,
  ],
  [
    'limit past the safe integers',
    (s) => s.acquireSlot(OWNER, 'pool', 2 ** 53),
    RangeError,
    /^limit must be at most 9007199254740991 \(Number\.MAX_SAFE_INTEGER\)/,
  ],
  ['slot name empty', (s) => s.acquireSlot(OWNER, '', 2), RangeError, /^name must not be empty/],
  ['slot owner too long', (s) => s.acquireSlot(OWNER_65_BYTES, 'pool', 2), RangeError, /^ownerPHID must be at most 64/],
  [
    'commitWithLocks key bad',
    (s) => s.commitWithLocks(OWNER, [''], () => 1),
    RangeError,
    /^lockKeys\[0\] must not be empty/,
  ],
  [
    'commitWithLocks work missing',
    (s) => s.commitWithLocks(OWNER, ['k'], undefined as unknown as () => 1),
    TypeError,
    /^work must be a function/,
  ],
  ['withLocks owner bad', (s) => s.withLocks('', ['k'], () => 1), RangeError, /^ownerPHID must not be empty/],
  ['loadLocks owner bad', (s) => s.loadLocks(OWNER_65_BYTES), RangeError, /^ownerPHID must be at most 64/],
  ['loadHeldLocks key bad', (s) => s.loadHeldLocks([LONE_HIGH]), RangeError, /^lockKeys\[0\] must not contain a lone/],
  ['isLockFree key bad', (s) => s.isLockFree(3 as unknown as string), TypeError, /^lockKey must be a string/],
  [
    'retry attempts zero',
    (s) => s.acquireLocks(OWNER, ['k'], { retry: { attempts: 0 } }),
    RangeError,
    /^options\.retry\.attempts must be an integer of at least 1/,
  ],
  [
    'manager outside a transaction',
    (s) => s.acquireLocks(OWNER, ['k'], { manager: managerOutsideTransaction }),
    TypeError,
    /^options\.manager must be the EntityManager of a transaction/,
  ],
];

let managerOutsideTransaction: DataSource['manager'];

describe.each(ENGINES)('SPEC 5 bad input on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  const queryLog = new QueryLog();

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'bad_input', { logger: queryLog, logging: true });
    managerOutsideTransaction = dataSource.manager;
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    queryLog.clear();
  });

  test.each(CASES)('%s: rejects before any query, writes nothing', async (_label, call, errorType, message) => {
    const error = await call(service).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(errorType);
    expect((error as Error).message).toMatch(message);
    expect(queryLog.queries).toEqual([]);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  /** Item 12 of issue 9: PostgreSQL's text cannot hold U+0000; the others store it as written. */
  const NUL_CASES: Array<[label: string, call: (s: SlotLockService) => Promise<unknown>, message: RegExp]> = [
    ['a NUL in a key', (s) => s.acquireLocks(OWNER, ['fine', 'a\0b']), /^lockKeys\[1\] must not contain a NUL/],
    ['a NUL in an owner', (s) => s.acquireLocks('PHID\0x', ['k']), /^ownerPHID must not contain a NUL/],
    ['a NUL in a slot name', (s) => s.acquireSlot(OWNER, 'pool\0', 2), /^name must not contain a NUL/],
    ['a NUL in a released owner', (s) => s.releaseLocks('o\0'), /^ownerPHID must not contain a NUL/],
    [
      'a NUL in commitWithLocks',
      (s) => s.commitWithLocks(OWNER, ['\0'], () => 1),
      /^lockKeys\[0\] must not contain a NUL/,
    ],
  ];

  if (engine.name === 'postgres') {
    test.each(NUL_CASES)(
      '%s: a RangeError before any query (the column cannot store it)',
      async (_label, call, message) => {
        const error = await call(service).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(RangeError);
        expect((error as Error).message).toMatch(message);
        expect(queryLog.queries).toEqual([]);
        expect(await lockRows(dataSource)).toEqual([]);
      },
    );
  } else {
    test('a NUL in a key or an owner is stored and read back as written', async () => {
      await service.acquireLocks('PHID\0x', ['a\0b']);
      expect((await service.loadLocks('PHID\0x')).map((lock) => [lock.ownerPHID, lock.lockKey])).toEqual([
        ['PHID\0x', 'a\0b'],
      ]);
      expect(await service.isLockFree('a\0b')).toBe(false);
      expect(await service.isLockFree('a')).toBe(true);
      expect(await service.releaseLocks('PHID')).toBe(0);
      expect(await service.releaseLocks('PHID\0x')).toBe(1);
    });
  }

  test('an owner of exactly 64 bytes in multi-byte characters is accepted and stored whole', async () => {
    await service.acquireLocks(OWNER_64_BYTES_MULTIBYTE, ['k']);
    expect((await service.loadLocks(OWNER_64_BYTES_MULTIBYTE)).map((lock) => lock.ownerPHID)).toEqual([
      OWNER_64_BYTES_MULTIBYTE,
    ]);
  });

  test('a key of exactly maxKeyBytes is accepted; the maximum is configurable', async () => {
    const tight = new SlotLockService(dataSource, { maxKeyBytes: 8 });
    await tight.acquireLocks(OWNER, ['12345678']);
    await expect(tight.acquireLocks(OWNER, ['123456789'])).rejects.toThrow(
      /^lockKeys\[0\] must be at most 8 UTF-8 bytes \(the service's maxKeyBytes option\), got 9$/,
    );
    await expect(tight.acquireLocks(OWNER, ['ééééé'])).rejects.toThrow(RangeError);
  });

  test('bad options are refused when the service is made, naming the option', () => {
    expect(() => new SlotLockService(dataSource, { maxKeyBytes: 0 })).toThrow(
      /^options\.maxKeyBytes must be a positive integer/,
    );
    expect(() => new SlotLockService(dataSource, { tableName: 'x; DROP TABLE y' })).toThrow(
      /^options\.tableName must be/,
    );
    expect(() => new SlotLockService(dataSource, { retry: { baseDelayMs: -1 } })).toThrow(
      /^options\.retry\.baseDelayMs/,
    );
    expect(() => new SlotLockService({} as DataSource)).toThrow(/^dataSource must be a TypeORM DataSource/);
  });
});

describe('SPEC 5 bad input on mariadb, with the server in non-strict sql_mode', () => {
  describe('where MySQL would cut a long owner silently', () => {
    let lax: DataSource;
    let laxService: SlotLockService;
    const laxLog = new QueryLog();
    let savedMode = '';

    beforeAll(async () => {
      savedMode = await withAdmin(async (admin) => {
        const [row] = (await admin.query('SELECT @@GLOBAL.sql_mode AS mode')) as Array<{ mode: string }>;
        await admin.query("SET GLOBAL sql_mode = ''");
        return row!.mode;
      });
      await (await freshDataSource('bad_input_lax')).destroy();
      lax = new DataSource(dataSourceOptions(testDatabaseName('bad_input_lax'), { logger: laxLog, logging: true }));
      await lax.initialize();
      laxService = new SlotLockService(lax);
    });
    afterAll(async () => {
      await withAdmin((admin) => admin.query('SET GLOBAL sql_mode = ?', [savedMode]));
      await lax?.destroy();
    });

    test('the server really would cut a long owner silently', async () => {
      const [mode] = (await lax.query('SELECT @@SESSION.sql_mode AS mode')) as Array<{ mode: string }>;
      expect(mode!.mode).not.toMatch(/STRICT/);
      await lax.query(
        "INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, 'xxxxxxxxxxxx', 'probe')",
        [OWNER_65_BYTES],
      );
      const [row] = (await lax.query(
        "SELECT LENGTH(ownerPHID) AS n FROM drydock_slotlock WHERE lockKey = 'probe'",
      )) as Array<{
        n: string;
      }>;
      expect(Number(row!.n)).toBe(64);
      await lax.query('DELETE FROM drydock_slotlock');
    });

    test.each(CASES.filter(([label]) => !label.startsWith('manager')))(
      '%s: still rejected before any query',
      async (_label, call, errorType, message) => {
        laxLog.clear();
        const error = await call(laxService).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(errorType);
        expect((error as Error).message).toMatch(message);
        expect(laxLog.queries).toEqual([]);
        expect(await allRows(lax)).toEqual([]);
      },
    );
  });
});
