/**
 * Where to split `rows` into consecutive statements whose text stays within
 * `budgetBytes` and `maxRows`, keeping their order: the end (exclusive) of each chunk,
 * the last being `rows.length`. Only bounds, so that no chunk's rows are copied before
 * its statement is built. Throws a `RangeError` (before anything is sent) when a single
 * row cannot fit at all.
 */
export function chunkEnds<T>(
  rows: readonly T[],
  budgetBytes: number,
  maxRows: number,
  rowBytes: (row: T) => number,
): number[] {
  const ends: number[] = [];
  let start = 0;
  let used = 0;
  for (let i = 0; i < rows.length; i += 1) {
    const bytes = rowBytes(rows[i]!);
    if (bytes > budgetBytes) {
      throw new RangeError(
        `a lock key is too long for one statement on this server (needs about ${bytes} bytes, ` +
          `the server accepts ${budgetBytes}): raise max_allowed_packet or lower the service's maxKeyBytes option`,
      );
    }
    if (i > start && (used + bytes > budgetBytes || i - start >= maxRows)) {
      ends.push(i);
      start = i;
      used = 0;
    }
    used += bytes;
  }
  if (rows.length > start) ends.push(rows.length);
  return ends;
}
