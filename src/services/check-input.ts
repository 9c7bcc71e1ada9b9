import { digestForIndex } from '../hash/digest-for-index';

/** Longest owner, in UTF-8 bytes: the column is `VARBINARY(64)`. */
export const MAX_OWNER_BYTES = 64;

/** A requested lock, with its index computed once. */
export interface RequestedLock {
  readonly lockKey: string;
  readonly lockIndex: string;
}

/**
 * What the engine and the service's options let a key or owner hold, beyond what every
 * engine shares (a non-empty, well-formed string).
 */
export interface TextRules {
  /** Longest lock key, in UTF-8 bytes (the service's `maxKeyBytes`). */
  readonly maxKeyBytes: number;
  /** False where the column cannot store a NUL character (PostgreSQL `text`). */
  readonly nulAllowed: boolean;
}

/**
 * Checks an owner id (SPEC 5). A server in non-strict `sql_mode` would silently cut
 * an owner longer than the column, and the owner could then never release its locks.
 */
export function checkOwner(ownerPHID: unknown, rules: TextRules, argumentName = 'ownerPHID'): string {
  if (typeof ownerPHID !== 'string') {
    throw new TypeError(`${argumentName} must be a string, got ${describe(ownerPHID)}`);
  }
  const problem = storageProblem(ownerPHID, rules);
  if (problem !== undefined) throw new RangeError(`${argumentName} ${problem}`);
  const bytes = Buffer.byteLength(ownerPHID, 'utf8');
  if (bytes > MAX_OWNER_BYTES) {
    throw new RangeError(
      `${argumentName} must be at most ${MAX_OWNER_BYTES} UTF-8 bytes (the column is VARBINARY(${MAX_OWNER_BYTES})), got ${bytes}`,
    );
  }
  return ownerPHID;
}

/**
 * Checks one lock key (SPEC 5). `position`, for a key of a list, is added to the
 * argument's name in a message (`lockKeys[3]`): only then, as a name built for every key
 * of every call would cost more than the checks.
 */
export function checkLockKey(lockKey: unknown, rules: TextRules, argumentName: string, position?: number): string {
  if (typeof lockKey !== 'string') {
    throw new TypeError(`${nameOf(argumentName, position)} must be a string, got ${describe(lockKey)}`);
  }
  const problem = storageProblem(lockKey, rules);
  if (problem !== undefined) throw new RangeError(`${nameOf(argumentName, position)} ${problem}`);
  // length counts UTF-16 units; a unit is at most 3 UTF-8 bytes, so short keys skip the count.
  if (lockKey.length * 3 > rules.maxKeyBytes) {
    const bytes = Buffer.byteLength(lockKey, 'utf8');
    if (bytes > rules.maxKeyBytes) {
      throw new RangeError(
        `${nameOf(argumentName, position)} must be at most ${rules.maxKeyBytes} UTF-8 bytes (the service's maxKeyBytes option), got ${bytes}`,
      );
    }
  }
  return lockKey;
}

function nameOf(argumentName: string, position: number | undefined): string {
  return position === undefined ? argumentName : `${argumentName}[${position}]`;
}

/** What owners and keys share: not empty, storable as written. Why `text` is not, or undefined. */
function storageProblem(text: string, rules: TextRules): string | undefined {
  if (text.length === 0) return 'must not be empty';
  if (!text.isWellFormed()) return 'must not contain a lone UTF-16 surrogate (it cannot be stored as written)';
  if (!rules.nulAllowed && text.includes('\0')) {
    return 'must not contain a NUL character (U+0000): this database cannot store it as written';
  }
  return undefined;
}

/**
 * Checks a list of keys and turns it into the locks to take: duplicates counted once,
 * sorted by lock index so that every caller inserts overlapping sets in the same order.
 */
export function prepareLocks(lockKeys: unknown, rules: TextRules, argumentName = 'lockKeys'): RequestedLock[] {
  const keys = toKeyArray(lockKeys, argumentName);
  const locks = new Array<RequestedLock>(keys.length);
  // An index loop, not forEach: forEach skips the holes of a sparse array ([, 'k']).
  for (let position = 0; position < keys.length; position += 1) {
    const lockKey = checkLockKey(keys[position], rules, argumentName, position);
    locks[position] = { lockKey, lockIndex: digestForIndex(lockKey) };
  }
  locks.sort(compareByIndex);
  // Duplicates are neighbours once sorted, the first asked first (the sort is stable); two
  // keys with one digest (72 bits: vanishingly rare) need one row too: the index is the lock.
  // Sorted, then deduplicated in place: no Map on every call's path (issue 12, item 1).
  let kept = Math.min(locks.length, 1);
  for (let next = 1; next < locks.length; next += 1) {
    const lock = locks[next]!;
    if (lock.lockIndex !== locks[kept - 1]!.lockIndex) locks[kept++] = lock;
  }
  locks.length = kept;
  return locks;
}

/**
 * Largest slot limit: any safe integer. `acquireSlot` tries a bounded batch of random
 * slots at a time, so its cost does not grow with the limit (issue 13), and finding the
 * last free slots or deciding that all are held is a scan on the server.
 */
export const MAX_SLOT_LIMIT = Number.MAX_SAFE_INTEGER;

/** Checks a slot limit (SPEC 4.7, 5). */
export function checkLimit(limit: unknown, argumentName = 'limit'): number {
  if (typeof limit !== 'number') {
    throw new TypeError(`${argumentName} must be a number, got ${describe(limit)}`);
  }
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`${argumentName} must be a positive integer, got ${limit}`);
  }
  if (limit > MAX_SLOT_LIMIT) {
    throw new RangeError(`${argumentName} must be at most ${MAX_SLOT_LIMIT} (Number.MAX_SAFE_INTEGER), got ${limit}`);
  }
  return limit;
}

function toKeyArray(lockKeys: unknown, argumentName: string): readonly unknown[] {
  if (typeof lockKeys === 'string' || lockKeys instanceof String) {
    throw new TypeError(`${argumentName} must be an array of strings, got a string; wrap a single key: [key]`);
  }
  if (Array.isArray(lockKeys)) return lockKeys;
  if (typeof lockKeys === 'object' && lockKeys !== null && Symbol.iterator in lockKeys) {
    return [...(lockKeys as Iterable<unknown>)];
  }
  throw new TypeError(`${argumentName} must be an array (or other iterable) of strings, got ${describe(lockKeys)}`);
}

function compareByIndex(a: RequestedLock, b: RequestedLock): number {
  // Byte order, as the BINARY(12) index sorts: localeCompare would fold case.
  return a.lockIndex < b.lockIndex ? -1 : a.lockIndex > b.lockIndex ? 1 : 0;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}
