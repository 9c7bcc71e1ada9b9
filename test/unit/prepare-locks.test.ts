import fc from 'fast-check';
import { digestForIndex } from '../../src';
import { prepareLocks } from '../../src/services/check-input';

const rules = { maxKeyBytes: 1 << 20, nulAllowed: true };

/** What prepareLocks promises, written the plain way: first of each index kept, sorted by index in byte order. */
function reference(keys: readonly string[]): Array<{ lockKey: string; lockIndex: string }> {
  const byIndex = new Map<string, { lockKey: string; lockIndex: string }>();
  for (const lockKey of keys) {
    const lockIndex = digestForIndex(lockKey);
    if (!byIndex.has(lockIndex)) byIndex.set(lockIndex, { lockKey, lockIndex });
  }
  return [...byIndex.values()].sort((a, b) => (a.lockIndex < b.lockIndex ? -1 : a.lockIndex > b.lockIndex ? 1 : 0));
}

describe('prepareLocks: the locks one call takes (issue 12, item 1: sorted, then deduplicated in place)', () => {
  test('duplicates count once, in byte order of their index, whatever the order asked', () => {
    const keys = ['b', 'a', 'b', 'c', 'a', 'a'];
    const locks = prepareLocks(keys, rules);
    expect(locks.map((lock) => lock.lockKey).sort()).toEqual(['a', 'b', 'c']);
    const indexes = locks.map((lock) => lock.lockIndex);
    expect(indexes).toEqual([...indexes].sort());
    expect(prepareLocks([], rules)).toEqual([]);
    expect(prepareLocks(['x', 'x', 'x'], rules)).toEqual([{ lockKey: 'x', lockIndex: digestForIndex('x') }]);
  });

  test('agrees with a Map-based reference on generated lists with repeats', () => {
    const key = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(
        fc
          .array(key, { maxLength: 40 })
          .chain((pool) =>
            pool.length === 0 ? fc.constant([] as string[]) : fc.array(fc.constantFrom(...pool), { maxLength: 80 }),
          ),
        (keys) => {
          expect(prepareLocks(keys, rules)).toEqual(reference(keys));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('the caller’s array is left as it was', () => {
    const keys = ['z', 'y', 'z'];
    prepareLocks(keys, rules);
    expect(keys).toEqual(['z', 'y', 'z']);
  });
});
