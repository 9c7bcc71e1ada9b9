/**
 * fast-check arbitraries for the generated bad-input tests: owners and keys of every
 * class SPEC 5 names (not strings, empty, lone UTF-16 surrogates, too long), next to
 * valid ones that are odd on purpose (any Unicode code point, emoji sequences, combining
 * marks, NUL, BOM, noncharacters, very long keys, SQL-looking text), and an oracle that
 * says, from SPEC 5 alone, which argument a call must reject.
 */
import fc from 'fast-check';

/** Bytes of `text` in UTF-8. */
export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** SQL and escaping fragments: in a key or an owner they are data, never SQL. */
const SQL_LOOKING = [
  "'",
  '"',
  '`',
  '\\',
  "\\'",
  "';",
  '--',
  '#',
  '/*',
  '*/',
  '; DROP TABLE drydock_slotlock; --',
  "' OR '1'='1",
  '" OR ""="',
  '%',
  '_',
  '?',
  '??',
  ':name',
  '$1',
  '\u001a',
  'NULL',
  'SELECT SLEEP(5)',
  ') UNION SELECT ownerPHID FROM drydock_slotlock WHERE (1=1',
  'CHAR(39)',
  '0x27',
  '\\0',
  '\\N',
];

/** Odd but valid Unicode: each is well-formed UTF-16. */
const ODD_UNICODE = [
  '\u0000',
  '\u0001',
  '\t',
  '\n',
  '\r\n',
  '\u007f',
  '\u0085',
  '\u00a0',
  '\u00ad',
  '\u200b',
  '\u200d',
  '\u202e',
  '\u2028',
  '\ufeff',
  '\ufffd',
  '\ufffe',
  '\uffff',
  '\u{10ffff}',
  '\u{e0001}',
  '\u{1f600}',
  '\u{1f468}\u200d\u{1f469}\u200d\u{1f467}\u200d\u{1f466}',
  '\u{1f1eb}\u{1f1f7}',
  'e\u0301',
  '\u00e9',
  'Z\u0351\u0360\u0346\u035b\u0313',
  '\u0130',
  '\u00df',
  '\ufb03',
  '\u2126',
  '\u03a9',
  '\u{1d400}',
  'ключ✓',
  '鍵',
  '\u0645\u0641\u062a\u0627\u062d',
];

/** A piece of text: random code points of the whole Unicode range, or odd or SQL-looking fragments. */
const piece = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 4 }) },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_UNICODE) },
  { weight: 2, arbitrary: fc.constantFrom(...SQL_LOOKING) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 8 }) },
);

/** Well-formed text of 1 or more characters. */
export const text = fc
  .array(piece, { minLength: 1, maxLength: 6 })
  .map((parts) => parts.join(''))
  .filter((joined) => joined.length > 0);

/**
 * `seed` repeated, then cut (on a code point boundary) and padded with `x` to exactly
 * `bytes` UTF-8 bytes.
 */
export function fitTo(seed: string, bytes: number): string {
  const points = [...seed];
  const out: string[] = [];
  let used = 0;
  for (let i = 0; points.length > 0; i = (i + 1) % points.length) {
    const next = utf8Bytes(points[i]!);
    if (used + next > bytes) break;
    out.push(points[i]!);
    used += next;
  }
  return out.join('') + 'x'.repeat(bytes - used);
}

/** A lone surrogate put somewhere in `base`, kept only when it stays lone. */
const withLoneSurrogate = fc
  .tuple(fc.string({ unit: 'binary', maxLength: 6 }), fc.integer({ min: 0xd800, max: 0xdfff }), fc.nat())
  .map(([base, unit, at]) => {
    const position = at % (base.length + 1);
    return base.slice(0, position) + String.fromCharCode(unit) + base.slice(position);
  })
  .filter((candidate) => !candidate.isWellFormed());

/** Values that are not strings (what plain JavaScript callers pass by mistake). */
export const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.bigInt(),
  fc.constant(Symbol('key')),
  fc.date(),
  fc.constant(Buffer.from('PHID-DRYL-buffer')),
  fc.array(fc.string(), { maxLength: 2 }),
  fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 }),
  fc.constant(() => 'key'),
);

/** Valid owners: 1 to 64 UTF-8 bytes, well-formed (64 exactly now and then). */
export const validOwner = fc.oneof(
  { weight: 5, arbitrary: text.filter((owner) => utf8Bytes(owner) <= 64) },
  { weight: 1, arbitrary: fc.tuple(text, fc.integer({ min: 1, max: 64 })).map(([seed, n]) => fitTo(seed, n)) },
  { weight: 1, arbitrary: text.map((seed) => fitTo(seed, 64)) },
);

/** Owners SPEC 5 rejects. */
export const badOwner = fc.oneof(
  notAString,
  fc.constant(''),
  withLoneSurrogate,
  fc.tuple(text, fc.integer({ min: 65, max: 400 })).map(([seed, n]) => fitTo(seed, n)),
);

/** Valid keys for a service whose maxKeyBytes is `maxBytes`: mostly short, sometimes very long, sometimes exactly the limit. */
export function validKey(maxBytes: number) {
  return fc.oneof(
    { weight: 12, arbitrary: text.filter((key) => utf8Bytes(key) <= maxBytes) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(text, fc.integer({ min: Math.min(1000, maxBytes), max: maxBytes }))
        .map(([seed, n]) => fitTo(seed, n)),
    },
    { weight: 1, arbitrary: text.map((seed) => fitTo(seed, maxBytes)) },
  );
}

/** Keys SPEC 5 rejects, for a service whose maxKeyBytes is `maxBytes`. */
export function badKey(maxBytes: number) {
  return fc.oneof(
    notAString,
    fc.constant(''),
    withLoneSurrogate,
    fc.tuple(text, fc.integer({ min: 1, max: 64 })).map(([seed, over]) => fitTo(seed, maxBytes + over)),
  );
}

/** How the keys reach the service: an array, a Set, a one-shot generator, or something that is no list at all. */
export type KeysArgument =
  | { readonly kind: 'array' | 'set' | 'generator'; readonly items: readonly unknown[] }
  | { readonly kind: 'not a list'; readonly value: unknown };

export function keysArgument(maxBytes: number): fc.Arbitrary<KeysArgument> {
  const entry = fc.oneof({ weight: 9, arbitrary: validKey(maxBytes) }, { weight: 1, arbitrary: badKey(maxBytes) });
  const items = fc
    .tuple(fc.array(entry, { maxLength: 6 }), fc.boolean())
    // Now and then a key asked for twice (the service counts it once).
    .map(([list, repeat]) => (repeat && list.length > 0 ? [...list, list[0]] : list));
  return fc.oneof(
    { weight: 8, arbitrary: items.map((list) => ({ kind: 'array' as const, items: list })) },
    { weight: 1, arbitrary: items.map((list) => ({ kind: 'set' as const, items: list })) },
    { weight: 1, arbitrary: items.map((list) => ({ kind: 'generator' as const, items: list })) },
    {
      weight: 1,
      arbitrary: fc
        .oneof(text, fc.integer(), fc.constant(null), fc.constant(undefined), fc.constant({ length: 1, 0: 'k' }))
        .map((value) => ({ kind: 'not a list' as const, value })),
    },
  );
}

/** The value to pass, built fresh (a generator can be read once). */
export function materialize(argument: KeysArgument): unknown {
  switch (argument.kind) {
    case 'array':
      return [...argument.items];
    case 'set':
      return new Set(argument.items);
    case 'generator':
      return (function* keys() {
        yield* argument.items;
      })();
    case 'not a list':
      return argument.value;
  }
}

/** SPEC 5 for an owner. */
export function ownerIsValid(owner: unknown): owner is string {
  return typeof owner === 'string' && owner.length > 0 && owner.isWellFormed() && utf8Bytes(owner) <= 64;
}

/** SPEC 5 for a key. */
export function keyIsValid(key: unknown, maxBytes: number): key is string {
  return typeof key === 'string' && key.length > 0 && key.isWellFormed() && utf8Bytes(key) <= maxBytes;
}

/** The keys a valid argument asks for, or undefined when SPEC 5 rejects it. */
export function validKeys(argument: KeysArgument, maxBytes: number): string[] | undefined {
  if (argument.kind === 'not a list') return undefined;
  const items = argument.kind === 'set' ? [...new Set(argument.items)] : argument.items;
  return items.every((key) => keyIsValid(key, maxBytes)) ? (items as string[]) : undefined;
}

/** Limits SPEC 5 rejects (and a few that are fine). */
export const limitArgument = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 5 }) },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom(0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -0.5, 2 ** 53, 10_001),
      notAString,
      fc.constantFrom('3', '1'),
    ),
  },
);

export function limitIsValid(limit: unknown): limit is number {
  // Any safe integer from 1 (issue 13 lifted the old cap of 10,000).
  return typeof limit === 'number' && Number.isSafeInteger(limit) && limit >= 1;
}
