/**
 * Splits rows into consecutive batches whose statements stay within `budgetBytes` and
 * `maxRows`, keeping their order. Throws a `RangeError` (before anything is sent) when
 * a single row cannot fit at all.
 */
export function chunkRows<T>(
  rows: readonly T[],
  budgetBytes: number,
  maxRows: number,
  rowBytes: (row: T) => number,
): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let used = 0;
  for (const row of rows) {
    const bytes = rowBytes(row);
    if (bytes > budgetBytes) {
      throw new RangeError(
        `a lock key is too long for one statement on this server (needs about ${bytes} bytes, ` +
          `the server accepts ${budgetBytes}): raise max_allowed_packet or lower the service's maxKeyBytes option`,
      );
    }
    if (current.length > 0 && (used + bytes > budgetBytes || current.length >= maxRows)) {
      chunks.push(current);
      current = [];
      used = 0;
    }
    current.push(row);
    used += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
