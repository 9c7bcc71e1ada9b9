import { chunkEnds } from '../../src/services/chunk-rows';

/** Rows are their own size in bytes. */
const sized = (rows: readonly number[], limits: { limitBytes: number; targetBytes: number; maxRows: number }) =>
  chunkEnds(rows, limits, (bytes) => bytes);

describe('chunkEnds: where the INSERTs of one acquisition split (issue 12, item 2)', () => {
  const limits = { limitBytes: 1000, targetBytes: 100, maxRows: 1000 };

  test('no rows, no chunk; rows that fit, one chunk', () => {
    expect(sized([], limits)).toEqual([]);
    expect(sized([10, 20, 30], limits)).toEqual([3]);
  });

  test('a chunk that fills targetBytes exactly keeps its last row; one byte more starts the next', () => {
    expect(sized([50, 50, 1], limits)).toEqual([2, 3]);
    expect(sized([50, 51, 49], limits)).toEqual([1, 3]);
  });

  test('a row larger than targetBytes but within limitBytes goes alone in its chunk', () => {
    expect(sized([10, 500, 10], limits)).toEqual([1, 2, 3]);
    expect(sized([500], limits)).toEqual([1]);
    expect(sized([1000, 1000], limits)).toEqual([1, 2]);
  });

  test('a row over limitBytes is refused before anything is sent', () => {
    expect(() => sized([10, 1001], limits)).toThrow(RangeError);
    expect(() => sized([10, 1001], limits)).toThrow(/too long for one statement.*needs about 1001 bytes.*accepts 1000/);
  });

  test('maxRows splits however small the rows are', () => {
    expect(sized([1, 1, 1, 1, 1], { ...limits, maxRows: 2 })).toEqual([2, 4, 5]);
  });

  test('every row lands in exactly one chunk, in order, each within its bounds', () => {
    // A deterministic spread of sizes around the target: small, near it, over it.
    const rows = Array.from({ length: 500 }, (_, i) => ((i * 37) % 130) + 1);
    const ends = sized(rows, limits);
    expect(ends.at(-1)).toBe(rows.length);
    let start = 0;
    for (const end of ends) {
      expect(end).toBeGreaterThan(start);
      const chunk = rows.slice(start, end);
      const bytes = chunk.reduce((total, row) => total + row, 0);
      if (chunk.length > 1) expect(bytes).toBeLessThanOrEqual(limits.targetBytes);
      // Greedy: the next row would not have fitted.
      if (end < rows.length) expect(bytes + rows[end]!).toBeGreaterThan(limits.targetBytes);
      start = end;
    }
  });
});
