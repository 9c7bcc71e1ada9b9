import { digestForIndex } from '../../src';

/** One concurrent caller: its owner and its keys, disjoint from every other caller's. */
export interface Caller {
  readonly owner: string;
  readonly keys: readonly string[];
}

/** `callers` callers of `keys` keys each, named after `prefix` so that runs never share keys. */
export function makeCallers(prefix: string, keys: number, callers: number): Caller[] {
  return Array.from({ length: callers }, (_, caller) => ({
    owner: `PHID-${prefix}-${caller}`,
    keys: Array.from({ length: keys }, (_, i) => `${prefix.toLowerCase()}(${caller}).key(${i})`),
  }));
}

/** A lock row as the package writes it. */
export interface HashedRow {
  readonly ownerPHID: string;
  readonly lockIndex: string;
  readonly lockKey: string;
}

/**
 * The caller's rows, keys hashed with the package's digestForIndex and sorted by index
 * in byte order, as the package does on every call (raw contenders do it per cycle too).
 */
export function hashedRows(caller: Caller): HashedRow[] {
  return caller.keys
    .map((lockKey) => ({ ownerPHID: caller.owner, lockKey, lockIndex: digestForIndex(lockKey) }))
    .sort((a, b) => (a.lockIndex < b.lockIndex ? -1 : a.lockIndex > b.lockIndex ? 1 : 0));
}

/** The flat parameter list of a multi-row INSERT, three per row. */
export function rowParams(rows: readonly HashedRow[]): string[] {
  const params: string[] = [];
  for (const row of rows) params.push(row.ownerPHID, row.lockIndex, row.lockKey);
  return params;
}

/**
 * The parameters as the package sends them to MySQL: owners and keys as UTF-8 Buffers
 * (hex literals in the SQL text mysql2 builds, safe under NO_BACKSLASH_ESCAPES and any
 * connection charset), the ASCII index as text.
 */
export function mysqlRowParams(rows: readonly HashedRow[]): unknown[] {
  const params: unknown[] = [];
  for (const row of rows) params.push(Buffer.from(row.ownerPHID), row.lockIndex, Buffer.from(row.lockKey));
  return params;
}
