import { hash } from 'node:crypto';

/**
 * The 64 letters Phorge maps digest bytes onto (`PhabricatorHash::digestForIndex`).
 * Both cases appear, so a lock index must be compared byte-exact.
 */
const INDEX_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._';

/** Length of a lock index in characters (and bytes: every letter is ASCII). */
export const LOCK_INDEX_LENGTH = 12;

/**
 * Phorge's `PhabricatorHash::digestForIndex()`: the 12-character value stored in
 * `drydock_slotlock.lockIndex`, whose unique index is the lock itself.
 *
 * SHA-1 of the key's UTF-8 bytes, first 12 bytes, each byte's low six bits looked up
 * in a 64-letter alphabet. It must stay byte-for-byte identical to Phorge's, or a
 * Node service and Phorge sharing one table would not see each other's locks.
 *
 * @example
 * ```ts
 * digestForIndex('dog'); // 'Aliif7Qjd5ct'
 * ```
 */
export function digestForIndex(key: string): string {
  if (typeof key !== 'string') {
    throw new TypeError(`digestForIndex: key must be a string, got ${typeof key}`);
  }
  const digest = hash('sha1', key, 'binary');
  let index = '';
  for (let i = 0; i < LOCK_INDEX_LENGTH; i += 1) {
    index += INDEX_ALPHABET[digest.charCodeAt(i) & 0x3f];
  }
  return index;
}
