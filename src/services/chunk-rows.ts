/**
 * Where to split `rows` into consecutive statements, keeping their order: the end
 * (exclusive) of each chunk, the last being `rows.length`. Only bounds, so that no
 * chunk's rows are copied before its statement is built.
 *
 * A chunk holds at most `maxRows` rows and `targetBytes` bytes, except that a single row
 * larger than `targetBytes` gets a chunk of its own: `targetBytes` bounds the client's
 * memory, `limitBytes` is what the server accepts. Throws a `RangeError` (before
 * anything is sent) when a single row is over `limitBytes`.
 */
export function chunkEnds<T>(
  rows: readonly T[],
  limits: { readonly limitBytes: number; readonly targetBytes: number; readonly maxRows: number },
  rowBytes: (row: T) => number,
): number[] {
  const { limitBytes, targetBytes, maxRows } = limits;
  const ends: number[] = [];
  let start = 0;
  let used = 0;
  for (let i = 0; i < rows.length; i += 1) {
    const bytes = rowBytes(rows[i]!);
    if (bytes > limitBytes) {
      throw new RangeError(
        `a lock key is too long for one statement on this server (needs about ${bytes} bytes, ` +
          `the server accepts ${limitBytes}): raise max_allowed_packet or lower the service's maxKeyBytes option`,
      );
    }
    if (i > start && (used + bytes > targetBytes || i - start >= maxRows)) {
      ends.push(i);
      start = i;
      used = 0;
    }
    used += bytes;
  }
  if (rows.length > start) ends.push(rows.length);
  return ends;
}
