/**
 * Bad input, generated (SPEC 5): random owners and keys of every class SPEC 5 names,
 * very long and odd Unicode keys, SQL-looking text. Every call either succeeds and
 * stores each key byte for byte, or rejects with a TypeError or RangeError that names
 * the argument, before any query. Nothing partial, ever.
 */
import fc from 'fast-check';
import type { DataSource } from 'typeorm';
import { SlotLockService, digestForIndex } from '../../src';
import { testDatabaseName } from '../support/database';
import { QueryLog } from '../support/query-log';
import {
  badKey,
  badOwner,
  keyIsValid,
  keysArgument,
  limitArgument,
  limitIsValid,
  materialize,
  ownerIsValid,
  text,
  utf8Bytes,
  validKey,
  validKeys,
  validOwner,
  type KeysArgument,
} from '../support/stress/bad-input-arbitraries';
import { recordFigures, report } from '../support/stress/figures';
import { MAIN_SERVER_URL, databaseUrl, openDataSource, prepareDatabase } from '../support/stress/servers';

const DATABASE = testDatabaseName('stress_bad_input');
const URL = databaseUrl(MAIN_SERVER_URL, DATABASE);
/** A small limit next to the default one, so that keys at and past it are cheap to make. */
const SMALL_MAX_KEY_BYTES = 300;
const DEFAULT_MAX_KEY_BYTES = 65_535;

/** Runs per property; SLOTLOCK_STRESS_PROPERTY_RUNS scales them. */
const RUNS = Number(process.env.SLOTLOCK_STRESS_PROPERTY_RUNS ?? 250);

const owners = fc.oneof({ weight: 4, arbitrary: validOwner }, { weight: 1, arbitrary: badOwner });

describe('SPEC 5 bad input, generated: succeed byte-exact, or reject before any query', () => {
  let logged: DataSource;
  let reader: DataSource;
  const queryLog = new QueryLog();
  const services: Record<number, SlotLockService> = {};
  const tally: Record<string, { runs: number; succeeded: number; rejected: Record<string, number> }> = {};

  beforeAll(async () => {
    await prepareDatabase(MAIN_SERVER_URL, DATABASE);
    // Every statement the service sends is logged (which also keeps it on TypeORM's query runners).
    logged = await openDataSource(URL, { logging: true, logger: queryLog });
    reader = await openDataSource(URL);
    services[DEFAULT_MAX_KEY_BYTES] = new SlotLockService(logged);
    services[SMALL_MAX_KEY_BYTES] = new SlotLockService(logged, { maxKeyBytes: SMALL_MAX_KEY_BYTES });
  });
  afterAll(async () => {
    report('bad input, generated', tally);
    recordFigures('badInput', tally);
    await logged?.destroy();
    await reader?.destroy();
  });

  /** Every row, with owner and key as hex of their stored bytes. */
  async function rows(): Promise<Array<{ owner: string; lockIndex: string; key: string }>> {
    return (await reader.query(
      'SELECT HEX(ownerPHID) AS owner, CAST(lockIndex AS CHAR) AS lockIndex, HEX(lockKey) AS `key` FROM drydock_slotlock ORDER BY id',
    )) as Array<{ owner: string; lockIndex: string; key: string }>;
  }

  const hex = (value: string): string => Buffer.from(value, 'utf8').toString('hex').toUpperCase();

  /** The rows `owner` must hold after taking `keys`: one per distinct lock index, byte for byte. */
  function expectedRows(owner: string, keys: readonly string[]) {
    const byIndex = new Map<string, string>();
    for (const key of keys) if (!byIndex.has(digestForIndex(key))) byIndex.set(digestForIndex(key), key);
    return [...byIndex]
      .map(([lockIndex, key]) => ({ owner: hex(owner), lockIndex, key: hex(key) }))
      .sort((a, b) => (a.lockIndex < b.lockIndex ? -1 : 1));
  }

  function count(property: string, outcome: 'succeeded' | string): void {
    const entry = (tally[property] ??= { runs: 0, succeeded: 0, rejected: {} });
    entry.runs += 1;
    if (outcome === 'succeeded') entry.succeeded += 1;
    else entry.rejected[outcome] = (entry.rejected[outcome] ?? 0) + 1;
  }

  /**
   * Calls `call` (which must not throw synchronously) and checks the outcome: valid input
   * resolves; invalid input rejects with TypeError/RangeError naming `argument`, having
   * sent no query and left the table as it was (empty).
   */
  async function check<T>(
    property: string,
    argument: string | undefined,
    call: () => Promise<T>,
  ): Promise<{ ok: true; value: T } | { ok: false }> {
    queryLog.clear();
    let promise: Promise<T> | undefined;
    expect(() => {
      promise = call();
    }).not.toThrow();
    const settled = await promise!.then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    if (argument === undefined) {
      if (!settled.ok) throw settled.error; // valid input must not be refused
      count(property, 'succeeded');
      return settled;
    }
    expect(settled.ok).toBe(false);
    const error = (settled as { error: unknown }).error;
    expect([TypeError, RangeError]).toContain((error as Error).constructor);
    expect((error as Error).message.startsWith(argument)).toBe(true);
    expect(queryLog.queries).toEqual([]);
    expect(await rows()).toEqual([]);
    count(property, argument);
    return { ok: false };
  }

  /** Which argument SPEC 5 makes the call reject, checked in the service's order. */
  function firstBad(checks: Array<[string, boolean]>): string | undefined {
    return checks.find(([, valid]) => !valid)?.[0];
  }

  afterEach(async () => {
    // A failed property leaves its rows for the next one to trip on: clear them.
    await reader.query('DELETE FROM drydock_slotlock');
  });

  it.each([DEFAULT_MAX_KEY_BYTES, SMALL_MAX_KEY_BYTES])(
    'acquireLocks(owner, keys) with maxKeyBytes %d: stored byte-exact and released whole, or rejected before any query',
    async (maxBytes) => {
      const service = services[maxBytes]!;
      await fc.assert(
        fc.asyncProperty(owners, keysArgument(maxBytes), async (owner, keysArg) => {
          const keys = validKeys(keysArg, maxBytes);
          const bad = firstBad([
            ['ownerPHID', ownerIsValid(owner)],
            ['lockKeys', keys !== undefined],
          ]);
          const outcome = await check(`acquireLocks (maxKeyBytes ${maxBytes})`, bad, () =>
            service.acquireLocks(owner as string, materialize(keysArg) as Iterable<string>),
          );
          if (!outcome.ok) return;
          expect(await rows()).toEqual(expectedRows(owner as string, keys!));
          expect(await service.releaseLocks(owner as string)).toBe(expectedRows(owner as string, keys!).length);
          expect(await rows()).toEqual([]);
        }),
        { numRuns: RUNS },
      );
    },
  );

  it('commitWithLocks and withLocks: the locks and nothing else, whole, or a rejection before any query', async () => {
    const service = services[SMALL_MAX_KEY_BYTES]!;
    await fc.assert(
      fc.asyncProperty(
        owners,
        keysArgument(SMALL_MAX_KEY_BYTES),
        fc.constantFrom('commitWithLocks', 'withLocks'),
        async (owner, keysArg, method) => {
          const keys = validKeys(keysArg, SMALL_MAX_KEY_BYTES);
          const bad = firstBad([
            ['ownerPHID', ownerIsValid(owner)],
            ['lockKeys', keys !== undefined],
          ]);
          let seenInside: unknown[] | undefined;
          const outcome = await check(method, bad, async () => {
            const inside = async (): Promise<string> => {
              seenInside = await rows();
              return 'done';
            };
            return method === 'commitWithLocks'
              ? service.commitWithLocks(owner as string, materialize(keysArg) as Iterable<string>, () => 'done')
              : service.withLocks(owner as string, materialize(keysArg) as Iterable<string>, inside);
          });
          if (!outcome.ok) return;
          expect(outcome.value).toBe('done');
          if (method === 'withLocks') {
            expect(seenInside).toEqual(expectedRows(owner as string, keys!));
          } else {
            expect(await rows()).toEqual(expectedRows(owner as string, keys!));
            await service.releaseLocks(owner as string);
          }
          expect(await rows()).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('acquireSlot(owner, name, limit): one slot key stored byte-exact, or a rejection before any query', async () => {
    const service = services[SMALL_MAX_KEY_BYTES]!;
    const names = fc.oneof(
      { weight: 4, arbitrary: validKey(SMALL_MAX_KEY_BYTES) },
      { weight: 1, arbitrary: badKey(SMALL_MAX_KEY_BYTES) },
      // Fine alone, too long once ".slot(N)" is added.
      { weight: 1, arbitrary: text.map((seed) => seed.slice(0, 1) + 'n'.repeat(SMALL_MAX_KEY_BYTES - 3)) },
    );
    await fc.assert(
      fc.asyncProperty(owners, names, limitArgument, async (owner, name, limit) => {
        const nameValid = keyIsValid(name, SMALL_MAX_KEY_BYTES);
        const slotsFit =
          nameValid && limitIsValid(limit) && utf8Bytes(`${name}.slot(${limit - 1})`) <= SMALL_MAX_KEY_BYTES;
        const bad = firstBad([
          ['ownerPHID', ownerIsValid(owner)],
          ['name', nameValid],
          ['limit', limitIsValid(limit)],
          ['name', slotsFit],
        ]);
        const outcome = await check('acquireSlot', bad, () =>
          service.acquireSlot(owner as string, name as string, limit as number),
        );
        if (!outcome.ok) return;
        const { slot, lockKey } = outcome.value;
        expect(lockKey).toBe(`${name as string}.slot(${slot})`);
        expect(slot).toBeGreaterThanOrEqual(0);
        expect(slot).toBeLessThan(limit as number);
        expect(await rows()).toEqual(expectedRows(owner as string, [lockKey]));
        expect(await service.releaseLocks(owner as string)).toBe(1);
      }),
      { numRuns: RUNS },
    );
  });

  it('releaseLocks, loadLocks, loadHeldLocks, isLockFree, areLocksFree: an answer, or a rejection before any query', async () => {
    const service = services[SMALL_MAX_KEY_BYTES]!;
    type Read = { method: string; owner: unknown; keysArg: KeysArgument; key: unknown };
    const reads: fc.Arbitrary<Read> = fc.record({
      method: fc.constantFrom('releaseLocks', 'loadLocks', 'loadHeldLocks', 'isLockFree', 'areLocksFree'),
      owner: owners,
      keysArg: keysArgument(SMALL_MAX_KEY_BYTES),
      key: fc.oneof(validKey(SMALL_MAX_KEY_BYTES), badKey(SMALL_MAX_KEY_BYTES)),
    });
    await fc.assert(
      fc.asyncProperty(reads, async ({ method, owner, keysArg, key }) => {
        const keys = validKeys(keysArg, SMALL_MAX_KEY_BYTES);
        const calls: Record<string, [string | undefined, () => Promise<unknown>]> = {
          releaseLocks: [firstBad([['ownerPHID', ownerIsValid(owner)]]), () => service.releaseLocks(owner as string)],
          loadLocks: [firstBad([['ownerPHID', ownerIsValid(owner)]]), () => service.loadLocks(owner as string)],
          loadHeldLocks: [
            firstBad([['lockKeys', keys !== undefined]]),
            () => service.loadHeldLocks(materialize(keysArg) as Iterable<string>),
          ],
          isLockFree: [
            firstBad([['lockKey', keyIsValid(key, SMALL_MAX_KEY_BYTES)]]),
            () => service.isLockFree(key as string),
          ],
          areLocksFree: [
            firstBad([['lockKeys', keys !== undefined]]),
            () => service.areLocksFree(materialize(keysArg) as Iterable<string>),
          ],
        };
        const [bad, call] = calls[method]!;
        const outcome = await check(method, bad, call);
        if (!outcome.ok) return;
        const expected: Record<string, unknown> = {
          releaseLocks: 0,
          loadLocks: [],
          loadHeldLocks: [],
          isLockFree: true,
          areLocksFree: true,
        };
        expect(outcome.value).toEqual(expected[method]);
      }),
      { numRuns: RUNS },
    );
  });
});
