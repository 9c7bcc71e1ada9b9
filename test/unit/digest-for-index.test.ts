import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { digestForIndex } from '../../src';

describe('SPEC 3 lock index', () => {
  // Checked against Phorge's PhabricatorHash::digestForIndex().
  const vectors: Array<[string, string]> = [
    ['', 'qVzKuHbdOl_L'],
    ['a', '6TATWBDYxtts'],
    ['dog', 'Aliif7Qjd5ct'],
    ['mylock(PHID-XYZQ-abc)', '3jOUaNzWcHJU'],
    ['mylock(whatever).slot(2)', 'eGKQ.YQwEIHA'],
    ['workingcopy.lease(PHID-DRYR-aaaaaaaaaaaaaaaaaaaa)', 'juwvwdS1VR4p'],
    ['allocator(PHID-DRYB-aaaaaaaaaaaaaaaaaaaa).limit(0)', 'lzqbZ8Wm1L3S'],
    ['ключ✓', 'Tl0izdH6AAHb'],
  ];

  test.each(vectors)('digestForIndex(%j) is %s', (key, digest) => {
    expect(digestForIndex(key)).toBe(digest);
  });

  test('is 12 letters of the 64-letter alphabet, derived from SHA-1 of the UTF-8 bytes', () => {
    const alphabet = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ._';
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (key) => {
        const sha1 = createHash('sha1').update(Buffer.from(key, 'utf8')).digest();
        const expected = [...sha1.subarray(0, 12)].map((byte) => alphabet[byte & 0x3f]).join('');
        expect(digestForIndex(key)).toBe(expected);
        expect(digestForIndex(key)).toMatch(/^[0-9a-zA-Z._]{12}$/);
      }),
    );
  });

  test('rejects a key that is not a string', () => {
    expect(() => digestForIndex(42 as unknown as string)).toThrow(TypeError);
  });
});
