/**
 * SPEC 10 for slots: callers of one process waiting for a slot family wait in line. A
 * slot released through this process goes at once to the first in line, callers are
 * served in the order they came, and a caller behind others still gives up at its
 * `waitMs` or on its signal. The services here poll every 5 s, so a waiter served
 * within a second was handed its slot by the release, not found it by polling (on
 * PostgreSQL the release's NOTIFY wakes the first in line as well).
 */
import { DataSource, type DataSourceOptions } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl, type AcquiredSlot } from '../../src';
import { ENGINES, clearLocks, freshEngineDataSource, lockRows, type TestEngine } from '../support/engines';
import { rejection, resolution, sleep, track, type Tracked } from '../support/wait-timing';

const LABEL = 'waitline';
const SLOW_POLL = { baseDelayMs: 5000, maxDelayMs: 5000 };
/** Well under the 2.5 s of the shortest poll: the slot was handed over. */
const HANDED_OVER_MS = 1000;
/** Long enough for a caller's first try to find every slot held and put it in line. */
const FIRST_TRY_MS = 300;

const owner = (name: string): string => `PHID-LINE-${name}`;
/** A second lock table in the same database: its callers wait apart from the first table's. */
const OTHER_TABLE = 'other_slotlock';

/** A copy of the lock table's columns and indexes under another name (index names are per schema on PostgreSQL and SQLite). */
async function copyLockTable(dataSource: DataSource, engineName: TestEngine['name'], name: string): Promise<void> {
  if (engineName === 'mariadb') {
    await dataSource.query(`CREATE TABLE IF NOT EXISTS ${name} LIKE drydock_slotlock`);
  } else if (engineName === 'postgres') {
    await dataSource.query(`CREATE TABLE IF NOT EXISTS ${name} (LIKE drydock_slotlock INCLUDING ALL)`);
  } else {
    const ddl: Array<{ sql: string }> = await dataSource.query(
      "SELECT sql FROM sqlite_master WHERE tbl_name = 'drydock_slotlock' AND sql IS NOT NULL ORDER BY type DESC",
    );
    for (const { sql } of ddl) {
      await dataSource.query(sql.replaceAll('"drydock_slotlock"', `"${name}"`).replaceAll('"key_', `"${name}_key_`));
    }
  }
}

/** `{ lockKey: ownerPHID }` of every lock row. */
async function holders(dataSource: DataSource): Promise<Record<string, string>> {
  return Object.fromEntries((await lockRows(dataSource)).map((row) => [row.lockKey, row.ownerPHID]));
}

describe.each(ENGINES)('SPEC 10 waiting in line for a slot on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  /** Releases `ownerName`'s slot through the service and resolves when `next` took one, and how long that took. */
  async function handOver(ownerName: string, next: Tracked<AcquiredSlot>): Promise<number> {
    const releasedAt = Date.now();
    expect(await service.releaseLocks(owner(ownerName))).toBe(1);
    const { at } = await resolution(next);
    return at - releasedAt;
  }

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, LABEL);
    service = new SlotLockService(dataSource, { wait: SLOW_POLL });
    await copyLockTable(dataSource, engine.name, OTHER_TABLE);
  });
  afterAll(async () => {
    await service?.close();
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    await dataSource.query(`DELETE FROM ${OTHER_TABLE}`);
  });

  test('a slot released through this process goes at once to the first in line, and callers are served in the order they came', async () => {
    for (const holder of ['h0', 'h1']) await service.acquireSlot(owner(holder), 'line.fifo', 2);
    const waiters: Array<Tracked<AcquiredSlot>> = [];
    waiters.push(track(service.acquireSlot(owner('w0'), 'line.fifo', 2, { waitMs: 30_000 })));
    await sleep(FIRST_TRY_MS);
    // w0 is in line: the others join behind it in the order of these calls.
    for (let i = 1; i < 5; i += 1) {
      waiters.push(track(service.acquireSlot(owner(`w${i}`), 'line.fifo', 2, { waitMs: 30_000 })));
    }
    await sleep(FIRST_TRY_MS);
    expect(waiters.map((waiter) => waiter.outcome())).toEqual([undefined, undefined, undefined, undefined, undefined]);

    const releases = ['h0', 'h1', 'w0', 'w1', 'w2'];
    for (const [i, releasing] of releases.entries()) {
      expect(await handOver(releasing, waiters[i]!)).toBeLessThan(HANDED_OVER_MS);
      // Nobody behind it was served first.
      expect(waiters.slice(i + 1).map((waiter) => waiter.outcome())).toEqual(waiters.slice(i + 1).map(() => undefined));
    }
    const held = await holders(dataSource);
    expect(Object.values(held).sort()).toEqual([owner('w3'), owner('w4')]);
  });

  test('a caller who gives its slot back and asks again waits behind the caller already waiting', async () => {
    await service.acquireSlot(owner('h'), 'line.again', 1);
    const waiting = track(service.acquireSlot(owner('w'), 'line.again', 1, { waitMs: 30_000 }));
    await sleep(FIRST_TRY_MS);

    const releasedAt = Date.now();
    expect(await service.releaseLocks(owner('h'))).toBe(1);
    const askingAgain = track(service.acquireSlot(owner('h'), 'line.again', 1, { waitMs: 30_000 }));
    const { value, at } = await resolution(waiting);
    expect(at - releasedAt).toBeLessThan(HANDED_OVER_MS);
    expect(value.lockKey).toBe('line.again.slot(0)');
    expect(askingAgain.outcome()).toBeUndefined();
    expect(await holders(dataSource)).toEqual({ 'line.again.slot(0)': owner('w') });

    expect(await handOver('w', askingAgain)).toBeLessThan(HANDED_OVER_MS);
    expect(await holders(dataSource)).toEqual({ 'line.again.slot(0)': owner('h') });
  });

  test('an aborted first in line leaves its turn to the next, who takes the slot released', async () => {
    await service.acquireSlot(owner('h'), 'line.abort', 1);
    const controller = new AbortController();
    const first = track(
      service.acquireSlot(owner('w0'), 'line.abort', 1, { waitMs: 30_000, signal: controller.signal }),
    );
    await sleep(FIRST_TRY_MS);
    const second = track(service.acquireSlot(owner('w1'), 'line.abort', 1, { waitMs: 30_000 }));
    await sleep(50);
    controller.abort();
    expect(((await rejection(first)).error as Error).name).toBe('AbortError');

    expect(await handOver('h', second)).toBeLessThan(HANDED_OVER_MS);
    expect(await holders(dataSource)).toEqual({ 'line.abort.slot(0)': owner('w1') });
  });

  test('a caller behind others gives up at its own waitMs, and the first in line counts every try of its wait', async () => {
    // Held from another DataSource: nothing of this process's line sees that release coming.
    const other = await new DataSource({
      ...dataSourceOptionsFromUrl(engine.url(LABEL)),
    } as DataSourceOptions).initialize();
    const otherService = new SlotLockService(other);
    const polling = new SlotLockService(dataSource); // default pauses: 10 ms growing to 100 ms
    try {
      await otherService.acquireSlot(owner('h'), 'line.timeout', 1);
      const first = track(polling.acquireSlot(owner('w0'), 'line.timeout', 1, { waitMs: 30_000 }));
      await sleep(FIRST_TRY_MS);
      const started = Date.now();
      const error = await polling.acquireSlot(owner('w1'), 'line.timeout', 1, { waitMs: 400 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SlotLockException);
      expect((error as SlotLockException).failure).toBe('held');
      expect((error as SlotLockException).getLockMap()).toEqual({ 'line.timeout.slot(0)': owner('h') });
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      expect(first.outcome()).toBeUndefined();

      expect(await otherService.releaseLocks(owner('h'))).toBe(1);
      const { value } = await resolution(first);
      // Its first try, the polls of the 700 ms or so in line, and the try that took the slot.
      expect(value.attempts).toBeGreaterThan(3);
      expect(await holders(dataSource)).toEqual({ 'line.timeout.slot(0)': owner('w0') });
    } finally {
      await polling.close();
      await otherService.close();
      await other.destroy();
    }
  });
  test('with waitMs: Infinity, a caller behind the first tries only when its turn comes', async () => {
    await service.acquireSlot(owner('h'), 'line.forever', 1);
    const first = track(service.acquireSlot(owner('w0'), 'line.forever', 1, { waitMs: Infinity }));
    await sleep(FIRST_TRY_MS);
    const second = track(service.acquireSlot(owner('w1'), 'line.forever', 1, { waitMs: Infinity }));
    await sleep(1000);
    expect(await handOver('h', first)).toBeLessThan(HANDED_OVER_MS);
    expect(await handOver('w0', second)).toBeLessThan(HANDED_OVER_MS);
    // The first: its try, and at most one poll of 2.5-5 s, then the slot; the second: the slot alone.
    expect((await resolution(first)).value.attempts).toBeLessThanOrEqual(3);
    expect((await resolution(second)).value.attempts).toBe(1);
  });

  test("callers of another lock table on the same DataSource do not wait behind this table's line", async () => {
    const otherTable = new SlotLockService(dataSource, { tableName: OTHER_TABLE, wait: SLOW_POLL });
    try {
      await service.acquireSlot(owner('h'), 'line.tables', 1);
      const waiting = track(service.acquireSlot(owner('w'), 'line.tables', 1, { waitMs: 30_000 }));
      await sleep(FIRST_TRY_MS);
      const started = Date.now();
      const taken = await otherTable.acquireSlot(owner('o'), 'line.tables', 1, { waitMs: 30_000 });
      expect(Date.now() - started).toBeLessThan(HANDED_OVER_MS);
      expect(taken.attempts).toBe(1);
      expect(waiting.outcome()).toBeUndefined();
      expect(await otherTable.releaseLocks(owner('o'))).toBe(1);
      expect(await handOver('h', waiting)).toBeLessThan(HANDED_OVER_MS);
    } finally {
      await otherTable.close();
    }
  });

  test('a slot given back by a caller aborted as its turn came goes on to the next in line', async () => {
    await service.acquireSlot(owner('h'), 'line.giveback', 1);
    const controller = new AbortController();
    const first = track(
      service.acquireSlot(owner('w0'), 'line.giveback', 1, { waitMs: 30_000, signal: controller.signal }),
    );
    await sleep(FIRST_TRY_MS);
    const second = track(service.acquireSlot(owner('w1'), 'line.giveback', 1, { waitMs: 30_000 }));
    await sleep(50);
    const releasedAt = Date.now();
    expect(await service.releaseLocks(owner('h'))).toBe(1);
    controller.abort(); // the first's try is under way, or about to be
    expect(((await rejection(first)).error as Error).name).toBe('AbortError');
    const { at } = await resolution(second);
    expect(at - releasedAt).toBeLessThan(HANDED_OVER_MS);
    expect(await holders(dataSource)).toEqual({ 'line.giveback.slot(0)': owner('w1') });
  });

  test("a session's close hands its slots to the first in line", async () => {
    const session = await service.openSession();
    try {
      await service.acquireSlot(session.ownerPHID, 'line.session', 1);
      const waiting = track(service.acquireSlot(owner('w'), 'line.session', 1, { waitMs: 30_000 }));
      await sleep(FIRST_TRY_MS);
      const closedAt = Date.now();
      await session.close();
      const { at } = await resolution(waiting);
      expect(at - closedAt).toBeLessThan(HANDED_OVER_MS);
      expect(await holders(dataSource)).toEqual({ 'line.session.slot(0)': owner('w') });
    } finally {
      await session.close();
    }
  });
});

const POOLED = ENGINES.filter((engine) => engine.name !== 'sqlite');
describe.each(POOLED)('SPEC 10 waiting in line for a slot on a pool of one connection on $name', (engine) => {
  let dataSource: DataSource;
  let pooled: DataSource;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, LABEL);
    pooled = await new DataSource({
      ...dataSourceOptionsFromUrl(engine.url(LABEL)),
      poolSize: 1,
    } as DataSourceOptions).initialize();
  });
  afterAll(async () => {
    await pooled?.destroy();
    await dataSource?.destroy();
  });
  beforeEach(() => clearLocks(dataSource));

  test('callers waiting in line leave the one connection to the releases and reads of others, and are served in order', async () => {
    const service = new SlotLockService(pooled, { wait: SLOW_POLL });
    try {
      await service.acquireSlot(owner('h'), 'line.pool', 1);
      const waiters = [track(service.acquireSlot(owner('w0'), 'line.pool', 1, { waitMs: 30_000 }))];
      await sleep(FIRST_TRY_MS);
      waiters.push(track(service.acquireSlot(owner('w1'), 'line.pool', 1, { waitMs: 30_000 })));
      waiters.push(track(service.acquireSlot(owner('w2'), 'line.pool', 1, { waitMs: 30_000 })));
      // Three calls in flight on one connection: a read still gets through at once.
      expect((await service.loadLocks(owner('h'))).map((lock) => lock.lockKey)).toEqual(['line.pool.slot(0)']);

      for (const [i, releasing] of ['h', 'w0', 'w1'].entries()) {
        const releasedAt = Date.now();
        expect(await service.releaseLocks(owner(releasing))).toBe(1);
        const { at } = await resolution(waiters[i]!);
        expect(at - releasedAt).toBeLessThan(HANDED_OVER_MS);
        expect(waiters.slice(i + 1).map((waiter) => waiter.outcome())).toEqual(
          waiters.slice(i + 1).map(() => undefined),
        );
      }
      expect(await holders(dataSource)).toEqual({ 'line.pool.slot(0)': owner('w2') });
    } finally {
      await service.close();
    }
  });
});
