import type { DataSource } from 'typeorm';
import { SlotLockException, SlotLockService } from '../../src';
import { dialectFor } from '../../src/dialects';
import { ENGINES, clearLocks, freshEngineDataSource } from '../support/engines';

/**
 * Slot families at any size (SPEC 4.7, issue 13): the server's search for the lowest
 * free slot, the bounded batches of candidates, and the same inside a caller's
 * transaction.
 */

const HOLDER = 'PHID-DRYL-holder';
const OWNER = 'PHID-DRYL-slotter';

function slotKeys(name: string, slots: readonly number[]): string[] {
  return slots.map((slot) => `${name}.slot(${slot})`);
}

describe.each(ENGINES)('SPEC 4.7 slot families on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'slot_families');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await service?.close();
    await dataSource?.destroy();
  });
  beforeEach(() => clearLocks(dataSource));

  /** The dialect's free-slot statement, run as the service runs it. */
  async function lowestFree(prefix: string, limit: number, start = 0): Promise<number | null> {
    const { sql, params } = dialectFor(dataSource).selectFirstFreeSlot('drydock_slotlock', prefix, limit, start);
    const [row] = (await dataSource.query(sql, [...params])) as Array<{ free: unknown }>;
    return row!.free === null ? null : Number(row!.free);
  }

  test.each([
    ['an empty family', [], 10, 0],
    ['slot 0 held', [0], 10, 1],
    ['a hole in the middle', [0, 1, 2, 4, 5], 10, 3],
    ['holes everywhere: the lowest', [1, 3, 5], 10, 0],
    ['every slot but the last', [0, 1, 2, 3, 4, 5, 6, 7, 8], 10, 9],
    ['every slot', [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10, null],
    ['slots past the limit do not count', [0, 1, 2, 10, 11], 3, null],
  ])('the lowest free slot, %s', async (_label, held, limit, expected) => {
    if (held.length > 0) await service.acquireLocks(HOLDER, slotKeys('gap', held));
    expect(await lowestFree('gap.slot(', limit)).toBe(expected);
  });

  test.each([
    ['the start itself when free', [0, 1, 2, 4, 5], 10, 3, 3],
    ['the next free one after a held start', [0, 1, 2, 4, 5], 10, 4, 6],
    ['wrapping round to a hole before the start', [0, 1, 3, 4, 5, 6, 7, 8, 9], 10, 5, 2],
    ['wrapping round to slot 0', [5, 6, 7, 8, 9], 10, 7, 0],
    ['none when every slot is held, whatever the start', [0, 1, 2], 3, 2, null],
  ])('from a start: %s', async (_label, held, limit, start, expected) => {
    await service.acquireLocks(HOLDER, slotKeys('from', held));
    expect(await lowestFree('from.slot(', limit, start)).toBe(expected);
  });

  test('a key with a newline after the digits is not a slot', async () => {
    await service.acquireLocks(HOLDER, ['nl.slot(0)', 'nl.slot(1\n)', 'nl.slot(2)']);
    expect(await lowestFree('nl.slot(', 3)).toBe(1);
  });

  if (engine.name !== 'postgres')
    test('a family whose name holds a NUL (PostgreSQL refuses NUL as input)', async () => {
      await service.acquireLocks(HOLDER, slotKeys('n\u0000ul', [0, 1]));
      expect(await lowestFree('n\u0000ul.slot(', 5)).toBe(2);
    });

  test('callers racing for the last free slots all get one: "held" only once every slot is held', async () => {
    for (const [name, limit, free] of [
      ['race.small', 8, [0, 1, 2, 3, 4, 5, 6, 7]],
      ['race.large', 400, [3, 77, 78, 150, 151, 152, 260, 399]],
    ] as const) {
      await service.acquireLocks(
        HOLDER,
        slotKeys(
          name,
          Array.from({ length: limit }, (_, slot) => slot).filter(
            (slot) => !(free as readonly number[]).includes(slot),
          ),
        ),
      );
      const results = await Promise.allSettled(
        free.map((_, caller) => service.acquireSlot(`PHID-DRYL-racer-${caller}`, name, limit)),
      );
      const rejected = results.filter((result) => result.status === 'rejected');
      expect(rejected.map((result) => String((result as PromiseRejectedResult).reason))).toEqual([]);
      const taken = results.map((result) => (result as PromiseFulfilledResult<{ slot: number }>).value.slot);
      expect([...taken].sort((a, b) => a - b)).toEqual([...free]);
      const late = (await service
        .acquireSlot('PHID-DRYL-late', name, limit)
        .catch((e: unknown) => e)) as SlotLockException;
      expect(late).toBeInstanceOf(SlotLockException);
      expect(late.failure).toBe('held');
    }
  });

  test('keys of another family, or written otherwise, are not slots', async () => {
    await service.acquireLocks(HOLDER, [
      'gap.slot(01)', // a leading zero: not slot 1
      'gap.slot(2', // no closing parenthesis
      'gap.slot(x)',
      'gap.slot()',
      'gap.slot(-1)',
      'gapx.slot(0)', // another family
      'other.gap.slot(0)',
      ...slotKeys('gap', [0]),
    ]);
    expect(await lowestFree('gap.slot(', 5)).toBe(1);
  });

  test('names with quotes, percent signs, underscores and non-ASCII letters are data', async () => {
    const name = `it's_100%\\ключ★`;
    await service.acquireLocks(HOLDER, slotKeys(name, [0, 1]));
    expect(await lowestFree(`${name}.slot(`, 5)).toBe(2);
    expect(await lowestFree(`it's_100%.slot(`, 5)).toBe(0);
  });

  test('acquireSlot inside a caller’s transaction: a large family, and one with a single free slot', async () => {
    await service.acquireLocks(
      HOLDER,
      slotKeys(
        'tx',
        Array.from({ length: 300 }, (_, slot) => slot).filter((slot) => slot !== 271),
      ),
    );
    const [large, last] = await dataSource.transaction(async (manager) => [
      await service.acquireSlot(OWNER, 'tx.large', 1_000_000, { manager }),
      await service.acquireSlot(OWNER, 'tx', 300, { manager }),
    ]);
    expect(large.lockKey).toBe(`tx.large.slot(${large.slot})`);
    expect(last.slot).toBe(271);
    const full = (await dataSource
      .transaction((manager) => service.acquireSlot('PHID-DRYL-late', 'tx', 300, { manager }))
      .catch((e: unknown) => e)) as SlotLockException;
    expect(full).toBeInstanceOf(SlotLockException);
    expect(full.failure).toBe('held');
    expect(Object.keys(full.getLockMap()).length).toBeLessThanOrEqual(32);
  });
});
