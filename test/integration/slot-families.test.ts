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

  /** The dialect's lowest-free-slot statement, run as the service runs it. */
  async function lowestFree(prefix: string, limit: number): Promise<number | null> {
    const { sql, params } = dialectFor(dataSource).selectFirstFreeSlot('drydock_slotlock', prefix, limit);
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
