/**
 * SPEC 10: waiting for held locks (`waitMs`) and cancelling (`signal`) on every
 * acquiring method, on the three engines; on PostgreSQL, waking through LISTEN/NOTIFY
 * on one listening connection per DataSource.
 */
import { LISTENER_LINGER_MS } from '../../src/dialects/postgres/release-listener';
import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { SlotLockException, SlotLockService, dataSourceOptionsFromUrl } from '../../src';
import {
  ENGINES,
  clearLocks,
  countOwned,
  createScratchTable,
  freshEngineDataSource,
  lockRows,
  type TestEngine,
} from '../support/engines';
import { QueryLog } from '../support/query-log';
import { eventually, rejection, resolution, sleep, track } from '../support/wait-timing';

const HOLDER = 'PHID-WAIT-holder00000000000000';
const WAITER = 'PHID-WAIT-waiter00000000000000';
let sessionOwners = 0;
/** A fresh owner for each call that holds its locks under a session (withLocks with ttlMs): never reused. */
function sessionOwner(): string {
  sessionOwners += 1;
  return `PHID-WAIT-session-${sessionOwners}`;
}
const LABEL = 'waiting';
/** How long after a release a polling waiter (default ceiling 100 ms) must have taken its locks. */
const POLL_SLACK_MS = 600;
/** How long after an abort a waiter must have rejected. */
const ABORT_SLACK_MS = 250;

/** A second DataSource on the test database: another pool (or connection) than the service's. */
async function secondDataSource(engine: TestEngine, extra: Partial<DataSourceOptions> = {}): Promise<DataSource> {
  const dataSource = new DataSource({ ...dataSourceOptionsFromUrl(engine.url(LABEL)), ...extra } as DataSourceOptions);
  return dataSource.initialize();
}

/** `{ lockKey: ownerPHID }` of every lock row. */
async function holders(dataSource: DataSource): Promise<Record<string, string>> {
  return Object.fromEntries((await lockRows(dataSource)).map((row) => [row.lockKey, row.ownerPHID]));
}

async function countRows(dataSource: DataSource, table: string): Promise<number> {
  const rows: Array<{ n: string | number }> = await dataSource.query(`SELECT COUNT(*) AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

describe.each(ENGINES)('SPEC 10 waiting and cancellation on $name', (engine) => {
  const queryLog = new QueryLog();
  let dataSource: DataSource;
  let service: SlotLockService;
  /** The holders' side: another DataSource, so that releases come from elsewhere. */
  let otherSource: DataSource;
  let otherService: SlotLockService;
  const insertWork = (manager: EntityManager, id: string): Promise<unknown> =>
    manager.query(`INSERT INTO wait_work (id) VALUES (${engine.placeholder(1)})`, [id]);

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, LABEL, { logger: queryLog, logging: true });
    service = new SlotLockService(dataSource);
    otherSource = await secondDataSource(engine);
    otherService = new SlotLockService(otherSource);
    await createScratchTable(dataSource, 'wait_work', [{ name: 'id', type: 'varchar', length: '64', isPrimary: true }]);
  });
  afterAll(async () => {
    await service?.close();
    await otherService?.close();
    await otherSource?.destroy();
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    await dataSource.query('DELETE FROM drydock_slotlock_session');
    await dataSource.query('DELETE FROM wait_work');
    queryLog.clear();
  });

  test('acquireLocks with waitMs takes nothing while a lock is held, and every lock soon after another DataSource releases', async () => {
    await otherService.acquireLocks(HOLDER, ['w(1)', 'w(2)']);
    const waiting = track(service.acquireLocks(WAITER, ['w(0)', 'w(1)'], { waitMs: 20_000 }));
    await sleep(400);
    expect(waiting.outcome()).toBeUndefined();
    expect(await countOwned(dataSource, WAITER)).toBe(0);
    const releasedAt = Date.now();
    expect(await otherService.releaseLocks(HOLDER)).toBe(2);
    const { at } = await resolution(waiting);
    expect(at - releasedAt).toBeLessThan(POLL_SLACK_MS);
    expect(await holders(dataSource)).toEqual({ 'w(0)': WAITER, 'w(1)': WAITER });
  });

  test("after waitMs of a lock never released, rejects with the 'held' SlotLockException and holds nothing", async () => {
    await otherService.acquireLocks(HOLDER, ['w(1)']);
    const waitMs = 600;
    const started = Date.now();
    const error = await service.acquireLocks(WAITER, ['w(0)', 'w(1)'], { waitMs }).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(SlotLockException);
    expect((error as SlotLockException).failure).toBe('held');
    expect((error as SlotLockException).getLockMap()).toEqual({ 'w(1)': HOLDER });
    expect(elapsed).toBeGreaterThanOrEqual(waitMs);
    expect(elapsed).toBeLessThan(waitMs + 2000);
    expect(await holders(dataSource)).toEqual({ 'w(1)': HOLDER });
  });

  test('an already aborted signal rejects with its reason before any query, on every acquiring method', async () => {
    // The log sees the service's statements (on SQLite those of its own connection too).
    await service.acquireLocks(WAITER, ['seen']);
    await service.releaseLocks(WAITER);
    expect(queryLog.queries.length).toBeGreaterThan(0);

    let ran = 0;
    const calls: Array<[string, (signal: AbortSignal) => Promise<unknown>]> = [
      ['acquireLocks', (signal) => service.acquireLocks(WAITER, ['a'], { signal })],
      ['acquireLocks with waitMs', (signal) => service.acquireLocks(WAITER, ['a'], { waitMs: 5000, signal })],
      ['acquireSlot', (signal) => service.acquireSlot(WAITER, 'fam', 2, { waitMs: 5000, signal })],
      [
        'commitWithLocks',
        (signal) => service.commitWithLocks(WAITER, ['a'], () => (ran += 1), { waitMs: 5000, signal }),
      ],
      ['withLocks', (signal) => service.withLocks(WAITER, ['a'], () => (ran += 1), { waitMs: 5000, signal })],
      [
        'withLocks with ttlMs',
        (signal) => service.withLocks(sessionOwner(), ['a'], () => (ran += 1), { ttlMs: 5000, waitMs: 5000, signal }),
      ],
    ];
    for (const [label, call] of calls) {
      for (const signal of [AbortSignal.abort(), AbortSignal.abort(new Error(`${label}: caller gave up`))]) {
        queryLog.clear();
        const error = await call(signal).then(
          () => new Error(`${label} resolved`),
          (e: unknown) => e,
        );
        expect({ label, error }).toEqual({ label, error: signal.reason });
        expect(queryLog.queries).toEqual([]);
      }
    }
    expect((AbortSignal.abort().reason as Error).name).toBe('AbortError');
    expect(ran).toBe(0);

    // With a manager too: nothing joins the caller's transaction.
    await dataSource.transaction(async (manager) => {
      queryLog.clear();
      const signal = AbortSignal.abort();
      await expect(service.acquireLocks(WAITER, ['a'], { manager, signal })).rejects.toBe(signal.reason);
      await expect(service.acquireSlot(WAITER, 'fam', 2, { manager, signal })).rejects.toBe(signal.reason);
      expect(queryLog.queries).toEqual([]);
    });
    expect(await lockRows(dataSource)).toEqual([]);
    expect(await countRows(dataSource, 'drydock_slotlock_session')).toBe(0);
  });

  test("an abort during the wait rejects promptly with an AbortError (or the signal's reason) and leaves nothing held", async () => {
    await otherService.acquireLocks(HOLDER, ['w(1)']);

    const controller = new AbortController();
    const waiting = track(
      service.acquireLocks(WAITER, ['w(0)', 'w(1)'], { waitMs: 60_000, signal: controller.signal }),
    );
    await sleep(300);
    expect(waiting.outcome()).toBeUndefined();
    let abortedAt = Date.now();
    controller.abort();
    let { error, at } = await rejection(waiting);
    expect((error as Error).name).toBe('AbortError');
    expect(error).toBe(controller.signal.reason);
    expect(at - abortedAt).toBeLessThan(ABORT_SLACK_MS);

    const reason = new Error('shutting down');
    const custom = new AbortController();
    const waitingForever = track(
      service.acquireLocks(WAITER, ['w(0)', 'w(1)'], { waitMs: Infinity, signal: custom.signal }),
    );
    await sleep(300);
    abortedAt = Date.now();
    custom.abort(reason);
    ({ error, at } = await rejection(waitingForever));
    expect(error).toBe(reason);
    expect(at - abortedAt).toBeLessThan(ABORT_SLACK_MS);

    // AbortSignal.timeout: waitMs Infinity ends with its TimeoutError.
    const started = Date.now();
    const timedOut = await service
      .acquireLocks(WAITER, ['w(1)'], { waitMs: Infinity, signal: AbortSignal.timeout(400) })
      .catch((e: unknown) => e);
    expect((timedOut as Error).name).toBe('TimeoutError');
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    expect(Date.now() - started).toBeLessThan(400 + ABORT_SLACK_MS + 500);

    expect(await holders(dataSource)).toEqual({ 'w(1)': HOLDER });
    // Nothing of the aborted waiters turns up once the lock is free.
    await otherService.releaseLocks(HOLDER);
    await sleep(300);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  test('an abort while a try is in flight rejects when that try returns, not after the pause that would follow it', async () => {
    // Pauses of 2.5 to 5 s between tries: a rejection within 1.5 s did not sit one out.
    const slow = new SlotLockService(dataSource, { wait: { baseDelayMs: 5000, maxDelayMs: 5000 } });
    await otherService.acquireLocks(HOLDER, ['w(1)', 'pool.slot(0)']);
    let ran = 0;
    const calls: Array<[string, (signal: AbortSignal) => Promise<unknown>]> = [
      ['acquireLocks', (signal) => slow.acquireLocks(WAITER, ['w(0)', 'w(1)'], { waitMs: 60_000, signal })],
      ['acquireSlot', (signal) => slow.acquireSlot(WAITER, 'pool', 1, { waitMs: 60_000, signal })],
      [
        'commitWithLocks',
        (signal) => slow.commitWithLocks(WAITER, ['w(1)'], () => (ran += 1), { waitMs: 60_000, signal }),
      ],
      ['withLocks', (signal) => slow.withLocks(WAITER, ['w(1)'], () => (ran += 1), { waitMs: 60_000, signal })],
    ];
    for (const [label, call] of calls) {
      const controller = new AbortController();
      const started = Date.now();
      const waiting = call(controller.signal);
      controller.abort(); // the call's first try has been sent, and has not returned
      const error = await waiting.catch((e: unknown) => e);
      expect({ label, error }).toEqual({ label, error: controller.signal.reason });
      expect({ label, withinASecondAndAHalf: Date.now() - started < 1500 }).toEqual({
        label,
        withinASecondAndAHalf: true,
      });
    }
    expect(ran).toBe(0);
    expect(await holders(dataSource)).toEqual({ 'w(1)': HOLDER, 'pool.slot(0)': HOLDER });
    await slow.close();
  });

  test('an abort racing the release: each call either holds every lock it asked for, or rejects holding none', async () => {
    const outcomes = { took: 0, aborted: 0 };
    for (let round = 0; round < 16; round += 1) {
      await otherService.acquireLocks(HOLDER, ['race(1)']);
      const controller = new AbortController();
      const waiting = track(
        service.acquireLocks(WAITER, ['race(0)', 'race(1)'], { waitMs: 20_000, signal: controller.signal }),
      );
      await sleep(50 + Math.random() * 100);
      const offset = Math.floor(Math.random() * 41) - 20; // abort up to 20 ms before or after the release
      await Promise.all([
        sleep(Math.max(0, offset)).then(() => otherService.releaseLocks(HOLDER)),
        sleep(Math.max(0, -offset)).then(() => controller.abort()),
      ]);
      const outcome = await waiting.done;
      if (outcome.ok) {
        outcomes.took += 1;
        expect(await holders(dataSource)).toEqual({ 'race(0)': WAITER, 'race(1)': WAITER });
        await service.releaseLocks(WAITER);
      } else {
        outcomes.aborted += 1;
        expect(outcome.error).toBe(controller.signal.reason);
        expect(await lockRows(dataSource)).toEqual([]);
      }
    }
    expect(outcomes.took + outcomes.aborted).toBe(16);
  });

  test('acquireSlot with waitMs: rejects held after waitMs, an abort leaves no slot, a release gives one at once', async () => {
    await otherService.acquireLocks(HOLDER, ['pool.slot(0)', 'pool.slot(1)']);

    const started = Date.now();
    const held = await service.acquireSlot(WAITER, 'pool', 2, { waitMs: 500 }).catch((e: unknown) => e);
    expect(held).toBeInstanceOf(SlotLockException);
    expect((held as SlotLockException).failure).toBe('held');
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);

    const controller = new AbortController();
    const aborted = track(service.acquireSlot(WAITER, 'pool', 2, { waitMs: 60_000, signal: controller.signal }));
    await sleep(300);
    const abortedAt = Date.now();
    controller.abort();
    const { error, at } = await rejection(aborted);
    expect((error as Error).name).toBe('AbortError');
    expect(at - abortedAt).toBeLessThan(ABORT_SLACK_MS);
    expect(await countOwned(dataSource, WAITER)).toBe(0);

    const waiting = track(service.acquireSlot(WAITER, 'pool', 2, { waitMs: 20_000 }));
    await sleep(300);
    expect(waiting.outcome()).toBeUndefined();
    const releasedAt = Date.now();
    await otherService.releaseLocks(HOLDER);
    const { value, at: tookAt } = await resolution(waiting);
    expect(tookAt - releasedAt).toBeLessThan(POLL_SLACK_MS);
    expect([0, 1]).toContain(value.slot);
    expect(await holders(dataSource)).toEqual({ [value.lockKey]: WAITER });
  });

  test('commitWithLocks with waitMs runs work only once the locks are taken, and commits both', async () => {
    await otherService.acquireLocks(HOLDER, ['job(1)']);
    const seen: Array<{ holder: number; mine: number }> = [];
    const waiting = track(
      service.commitWithLocks(
        WAITER,
        ['job(1)'],
        async (manager) => {
          seen.push({ holder: await countOwned(manager, HOLDER), mine: await countOwned(manager, WAITER) });
          await insertWork(manager, 'job-1');
          return 'done';
        },
        { waitMs: 20_000 },
      ),
    );
    await sleep(400);
    expect(waiting.outcome()).toBeUndefined();
    expect(seen).toEqual([]);
    const releasedAt = Date.now();
    await otherService.releaseLocks(HOLDER);
    const { value, at } = await resolution(waiting);
    expect(value).toBe('done');
    expect(at - releasedAt).toBeLessThan(POLL_SLACK_MS);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    for (const each of seen) expect(each).toEqual({ holder: 0, mine: 1 });
    expect(await countRows(dataSource, 'wait_work')).toBe(1);
    expect(await holders(dataSource)).toEqual({ 'job(1)': WAITER });
  });

  test('commitWithLocks: an abort before COMMIT rolls back work and locks; an abort during the wait never runs work', async () => {
    const onConflict = jest.fn();
    // Aborted inside work, before the unit commits.
    const inWork = new AbortController();
    const inWorkError: unknown = await service
      .commitWithLocks(
        WAITER,
        ['job(2)'],
        async (manager) => {
          await insertWork(manager, 'job-2');
          inWork.abort();
          return 'done';
        },
        { waitMs: 5000, signal: inWork.signal, onConflict },
      )
      .catch((error: unknown) => error);
    expect(inWorkError).toBe(inWork.signal.reason);
    expect((inWorkError as Error).name).toBe('AbortError');
    expect(await countRows(dataSource, 'wait_work')).toBe(0);
    expect(await lockRows(dataSource)).toEqual([]);

    // Aborted while waiting for a held lock.
    await otherService.acquireLocks(HOLDER, ['job(1)']);
    let ran = 0;
    const controller = new AbortController();
    const waiting = track(
      service.commitWithLocks(
        WAITER,
        ['job(0)', 'job(1)'],
        async (manager) => {
          ran += 1;
          await insertWork(manager, 'job-1');
        },
        { waitMs: 60_000, signal: controller.signal, onConflict },
      ),
    );
    await sleep(300);
    const abortedAt = Date.now();
    controller.abort();
    const { error, at } = await rejection(waiting);
    expect((error as Error).name).toBe('AbortError');
    expect(at - abortedAt).toBeLessThan(ABORT_SLACK_MS);
    expect(ran).toBe(0);
    expect(onConflict).not.toHaveBeenCalled();
    expect(await countRows(dataSource, 'wait_work')).toBe(0);
    expect(await holders(dataSource)).toEqual({ 'job(1)': HOLDER });
  });

  test('withLocks with waitMs and signal: fn runs once the locks are free, and an abort during the wait never runs it', async () => {
    await otherService.acquireLocks(HOLDER, ['w(1)']);
    const during: Array<{ mine: number; aborted: boolean }> = [];
    const controller = new AbortController();
    const waiting = track(
      service.withLocks(
        WAITER,
        ['w(1)'],
        async ({ signal }) => {
          during.push({ mine: await countOwned(dataSource, WAITER), aborted: signal.aborted });
          return 'ran';
        },
        { waitMs: 20_000, signal: controller.signal },
      ),
    );
    await sleep(300);
    expect(waiting.outcome()).toBeUndefined();
    const releasedAt = Date.now();
    await otherService.releaseLocks(HOLDER);
    const { value, at } = await resolution(waiting);
    expect(value).toBe('ran');
    expect(at - releasedAt).toBeLessThan(POLL_SLACK_MS);
    expect(during).toEqual([{ mine: 1, aborted: false }]);
    expect(await lockRows(dataSource)).toEqual([]);

    // Aborted while waiting, with and without a session: fn never runs, nothing is left.
    await otherService.acquireLocks(HOLDER, ['w(1)']);
    for (const ttlMs of [undefined, 5000]) {
      let ran = 0;
      const abort = new AbortController();
      const aborted = track(
        service.withLocks(ttlMs === undefined ? WAITER : sessionOwner(), ['w(0)', 'w(1)'], () => (ran += 1), {
          ttlMs,
          waitMs: 60_000,
          signal: abort.signal,
        }),
      );
      await sleep(300);
      const abortedAt = Date.now();
      abort.abort();
      const { error, at: rejectedAt } = await rejection(aborted);
      expect((error as Error).name).toBe('AbortError');
      expect(rejectedAt - abortedAt).toBeLessThan(ABORT_SLACK_MS + 200);
      expect(ran).toBe(0);
      expect(await holders(dataSource)).toEqual({ 'w(1)': HOLDER });
      expect(await countRows(dataSource, 'drydock_slotlock_session')).toBe(0);
    }
  });

  test("withLocks with ttlMs: the caller's abort during fn aborts fn's signal, and everything is given back", async () => {
    const controller = new AbortController();
    const reason = new Error('deploy cancelled');
    const seen: Array<{ sessions: number; mine: number }> = [];
    const owner = sessionOwner();
    const error = await service
      .withLocks(
        owner,
        ['deploy'],
        async ({ signal }) => {
          seen.push({
            sessions: await countRows(dataSource, 'drydock_slotlock_session'),
            mine: await countOwned(dataSource, owner),
          });
          setTimeout(() => controller.abort(reason), 50);
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          throw signal.reason;
        },
        { ttlMs: 5000, waitMs: 1000, signal: controller.signal },
      )
      .catch((e: unknown) => e);
    expect(error).toBe(reason);
    expect(seen).toEqual([{ sessions: 1, mine: 1 }]);
    expect(await lockRows(dataSource)).toEqual([]);
    expect(await countRows(dataSource, 'drydock_slotlock_session')).toBe(0);
  });

  test('waitMs with a manager is a TypeError before any query; waitMs 0 and a live signal are fine there', async () => {
    await dataSource.transaction(async (manager) => {
      queryLog.clear();
      await expect(service.acquireLocks(WAITER, ['m'], { manager, waitMs: 100 })).rejects.toThrow(TypeError);
      await expect(service.acquireLocks(WAITER, ['m'], { manager, waitMs: Infinity })).rejects.toThrow(
        /options\.waitMs cannot be used with options\.manager/,
      );
      await expect(service.acquireSlot(WAITER, 'fam', 2, { manager, waitMs: 100 })).rejects.toThrow(
        /options\.waitMs cannot be used with options\.manager/,
      );
      expect(queryLog.queries).toEqual([]);
      const signal = new AbortController().signal;
      await service.acquireLocks(WAITER, ['m'], { manager, waitMs: 0, signal });
      await service.acquireSlot(WAITER, 'fam', 2, { manager, waitMs: 0, signal });
    });
    expect(await countOwned(dataSource, WAITER)).toBe(2);
  });

  test('bad waitMs and signal values are refused before any query, naming the argument', async () => {
    const badWaits: unknown[] = [-1, -Infinity, NaN, '100', null, 10n];
    const badSignals: unknown[] = [{}, 'abort', { aborted: false }, new AbortController()];
    const methods: Array<[string, (options: Record<string, unknown>) => Promise<unknown>]> = [
      ['acquireLocks', (options) => service.acquireLocks(WAITER, ['b'], options)],
      ['acquireSlot', (options) => service.acquireSlot(WAITER, 'fam', 2, options)],
      ['commitWithLocks', (options) => service.commitWithLocks(WAITER, ['b'], () => 1, options)],
      ['withLocks', (options) => service.withLocks(WAITER, ['b'], () => 1, options)],
      [
        'withLocks with ttlMs',
        (options) => service.withLocks(sessionOwner(), ['b'], () => 1, { ttlMs: 5000, ...options }),
      ],
    ];
    for (const [label, call] of methods) {
      for (const waitMs of badWaits) {
        const error = await call({ waitMs }).catch((e: unknown) => e);
        expect({ label, waitMs, error }).toEqual({ label, waitMs, error: expect.any(RangeError) });
        expect((error as Error).message).toMatch(/^options\.waitMs must be/);
      }
      for (const signal of badSignals) {
        const error = await call({ waitMs: 100, signal }).catch((e: unknown) => e);
        expect({ label, signal, error }).toEqual({ label, signal, error: expect.any(TypeError) });
        expect((error as Error).message).toMatch(/^options\.signal must be an AbortSignal/);
      }
    }
    expect(queryLog.queries).toEqual([]);
    expect(await lockRows(dataSource)).toEqual([]);
    expect(await countRows(dataSource, 'drydock_slotlock_session')).toBe(0);

    expect(() => new SlotLockService(dataSource, { wait: { baseDelayMs: 0 } })).toThrow(
      /^options\.wait\.baseDelayMs must be/,
    );
    expect(() => new SlotLockService(dataSource, { wait: { maxDelayMs: Infinity } })).toThrow(RangeError);
  });
});

const POOLED = ENGINES.filter((engine) => engine.name !== 'sqlite');
if (POOLED.length > 0) {
  describe.each(POOLED)('SPEC 10 waiting on a pool of one connection on $name', (engine) => {
    let dataSource: DataSource;
    let pooled: DataSource;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, LABEL);
      pooled = await secondDataSource(engine, { poolSize: 1 });
      // The option reached the driver's pool: one connection, no more.
      const driver = pooled.driver as unknown as {
        master?: { options?: { max?: number } };
        pool?: { config?: { connectionLimit?: number } };
      };
      const limit = engine.name === 'postgres' ? driver.master?.options?.max : driver.pool?.config?.connectionLimit;
      expect(limit).toBe(1);
    });
    afterAll(async () => {
      await pooled?.destroy();
      await dataSource?.destroy();
    });
    beforeEach(() => clearLocks(dataSource));

    test("a waiter leaves the one connection to the release it waits for, on the same service's pool", async () => {
      const service = new SlotLockService(pooled);
      await service.acquireLocks(HOLDER, ['p(1)', 'one.slot(0)']);
      const waiting = track(service.acquireLocks(WAITER, ['p(0)', 'p(1)'], { waitMs: 20_000 }));
      const slot = track(service.acquireSlot(WAITER, 'one', 1, { waitMs: 20_000 }));
      await sleep(300);
      expect(waiting.outcome()).toBeUndefined();
      expect(slot.outcome()).toBeUndefined();
      const releasedAt = Date.now();
      expect(await service.releaseLocks(HOLDER)).toBe(2);
      const { at } = await resolution(waiting);
      await resolution(slot);
      expect(at - releasedAt).toBeLessThan(POLL_SLACK_MS + 400);
      const mine = await holders(dataSource);
      expect(Object.keys(mine).sort()).toEqual(['one.slot(0)', 'p(0)', 'p(1)']);
      expect(new Set(Object.values(mine))).toEqual(new Set([WAITER]));
      await service.close();
    });

    test('commitWithLocks and withLocks wait on a pool of one, and an abort there leaves nothing', async () => {
      const service = new SlotLockService(pooled, { wait: { baseDelayMs: 20, maxDelayMs: 50 } });
      await service.acquireLocks(HOLDER, ['p(1)']);
      const committing = track(
        service.commitWithLocks(WAITER, ['p(1)'], (manager) => countOwned(manager, WAITER), { waitMs: 20_000 }),
      );
      const controller = new AbortController();
      const aborted = track(
        service.withLocks('PHID-WAIT-other', ['p(1)'], () => 1, { waitMs: 20_000, signal: controller.signal }),
      );
      await sleep(300);
      controller.abort();
      expect((await rejection(aborted)).error).toBe(controller.signal.reason);
      await service.releaseLocks(HOLDER);
      expect((await resolution(committing)).value).toBe(1);
      expect(await holders(dataSource)).toEqual({ 'p(1)': WAITER });
      await service.close();
    });
  });
}

const POSTGRES = ENGINES.filter((engine) => engine.name === 'postgres');
if (POSTGRES.length > 0) {
  describe.each(POSTGRES)('SPEC 10 waking through LISTEN/NOTIFY on $name', (engine) => {
    /** Polls so seldom that only a notification explains a wake-up within a second. */
    const SLOW_WAIT = { baseDelayMs: 5000, maxDelayMs: 5000 };
    const WAKE_MS = 1000;
    let dataSource: DataSource;
    let otherSource: DataSource;
    let holderService: SlotLockService;

    /** The server pids of the connections a DataSource's pool holds. */
    function poolPids(source: DataSource): number[] {
      if (!source.isInitialized) return [];
      const pool = (source.driver as unknown as { master: { _clients: Array<{ processID: number | null }> } }).master;
      return pool._clients.map((client) => client.processID).filter((pid): pid is number => pid !== null);
    }

    /**
     * Connections to the test database that belong to no pool of this test: the
     * listening ones. (Told apart by pid rather than by their last statement, a LISTEN,
     * so that whatever the listener runs after it does not matter.)
     */
    async function listening(): Promise<number> {
      const rows: Array<{ pid: number }> = await otherSource.query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
      );
      const pooled = new Set([...poolPids(dataSource), ...poolPids(otherSource), ...extraSources.flatMap(poolPids)]);
      return rows.filter((row) => !pooled.has(row.pid)).length;
    }
    /** DataSources a test opened besides the two of every test. */
    const extraSources: DataSource[] = [];

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, LABEL);
      otherSource = await secondDataSource(engine);
      holderService = new SlotLockService(otherSource);
    });
    afterAll(async () => {
      await otherSource?.destroy();
      await dataSource?.destroy();
    });
    beforeEach(async () => {
      await clearLocks(dataSource);
      expect(await eventually(async () => (await listening()) === 0, 3000)).toBe(true);
    });

    test('a waiter wakes on the release within a second, though it polls every 5 s', async () => {
      const service = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      await holderService.acquireLocks(HOLDER, ['n(1)']);
      const waiting = track(service.acquireLocks(WAITER, ['n(1)'], { waitMs: 30_000 }));
      await sleep(800); // past its first tries, into a pause of 2.5 to 5 s
      expect(waiting.outcome()).toBeUndefined();
      expect(await listening()).toBe(1);
      const releasedAt = Date.now();
      await holderService.releaseLocks(HOLDER);
      const { at } = await resolution(waiting);
      expect(at - releasedAt).toBeLessThan(WAKE_MS);
      expect(await holders(dataSource)).toEqual({ 'n(1)': WAITER });
      await service.close(); // the listening connection would otherwise linger LISTENER_LINGER_MS
      expect(await eventually(async () => (await listening()) === 0, 3000)).toBe(true);
    });

    test('many waiters of two services on one DataSource share one LISTEN connection, closed by either service', async () => {
      const first = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      const second = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      const keys = Array.from({ length: 12 }, (_, i) => `n(${i})`);
      await holderService.acquireLocks(HOLDER, keys);
      const waiters = keys.map((key, i) =>
        track((i % 2 === 0 ? first : second).acquireLocks(`PHID-WAIT-w${i}`, [key], { waitMs: 30_000 })),
      );
      await sleep(800);
      expect(waiters.map((waiter) => waiter.outcome())).toEqual(keys.map(() => undefined));
      expect(await listening()).toBe(1);
      const releasedAt = Date.now();
      expect(await holderService.releaseLocks(HOLDER)).toBe(keys.length);
      for (const waiter of waiters) expect((await resolution(waiter)).at - releasedAt).toBeLessThan(WAKE_MS);
      expect(await listening()).toBe(1);
      await second.close();
      expect(await eventually(async () => (await listening()) === 0, 3000)).toBe(true);
      expect(Object.keys(await holders(dataSource))).toHaveLength(keys.length);
    });

    test('a second DataSource listens on a connection of its own', async () => {
      const here = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      const there = new SlotLockService(otherSource, { wait: SLOW_WAIT });
      await holderService.acquireLocks(HOLDER, ['n(1)', 'n(2)', 'n(3)', 'n(4)']);
      const waiters = [
        track(here.acquireLocks('PHID-WAIT-a', ['n(1)'], { waitMs: 30_000 })),
        track(here.acquireLocks('PHID-WAIT-b', ['n(2)'], { waitMs: 30_000 })),
        track(there.acquireLocks('PHID-WAIT-c', ['n(3)'], { waitMs: 30_000 })),
        track(there.acquireLocks('PHID-WAIT-d', ['n(4)'], { waitMs: 30_000 })),
      ];
      await sleep(800);
      expect(await listening()).toBe(2);
      const releasedAt = Date.now();
      await holderService.releaseLocks(HOLDER);
      for (const waiter of waiters) expect((await resolution(waiter)).at - releasedAt).toBeLessThan(WAKE_MS);
      await Promise.all([here.close(), there.close()]);
      expect(await eventually(async () => (await listening()) === 0, 3000)).toBe(true);
    });

    test('an aborted waiter leaves the connection to the others; the next waiter after the last listens anew', async () => {
      const service = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      await holderService.acquireLocks(HOLDER, ['n(1)']);
      const controller = new AbortController();
      const leaving = track(
        service.acquireLocks('PHID-WAIT-a', ['n(1)'], { waitMs: 30_000, signal: controller.signal }),
      );
      const staying = track(service.acquireLocks('PHID-WAIT-b', ['n(1)'], { waitMs: 30_000 }));
      await sleep(800);
      expect(await listening()).toBe(1);
      controller.abort();
      expect(((await rejection(leaving)).error as Error).name).toBe('AbortError');
      await sleep(200);
      expect(await listening()).toBe(1);
      let releasedAt = Date.now();
      await holderService.releaseLocks(HOLDER);
      expect((await resolution(staying)).at - releasedAt).toBeLessThan(WAKE_MS);
      await service.close();
      expect(await eventually(async () => (await listening()) === 0, 3000)).toBe(true);

      // The listener was closed; the next waiter opens it again and is woken as fast.
      const next = track(service.acquireLocks('PHID-WAIT-c', ['n(1)'], { waitMs: 30_000 }));
      await sleep(800);
      expect(await listening()).toBe(1);
      releasedAt = Date.now();
      await service.releaseLocks('PHID-WAIT-b');
      expect((await resolution(next)).at - releasedAt).toBeLessThan(WAKE_MS);
      expect(await holders(dataSource)).toEqual({ 'n(1)': 'PHID-WAIT-c' });
      await service.close();
    });

    test('the listening connection stays LISTENER_LINGER_MS after the last waiter, for the next one, then closes', async () => {
      const service = new SlotLockService(dataSource, { wait: SLOW_WAIT });
      await holderService.acquireLocks(HOLDER, ['n(1)']);
      const first = track(service.acquireLocks(WAITER, ['n(1)'], { waitMs: 30_000 }));
      await sleep(800);
      await holderService.releaseLocks(HOLDER);
      await resolution(first);
      const doneAt = Date.now();
      // A next waiter soon after is woken on the same connection, opened once.
      await holderService.acquireLocks(HOLDER, ['n(2)']);
      const second = track(service.acquireLocks('PHID-WAIT-next', ['n(2)'], { waitMs: 30_000 }));
      await sleep(800);
      expect(await listening()).toBe(1);
      const releasedAt = Date.now();
      await holderService.releaseLocks(HOLDER);
      expect((await resolution(second)).at - releasedAt).toBeLessThan(WAKE_MS);
      expect(await listening()).toBe(1);
      expect(await eventually(async () => (await listening()) === 0, LISTENER_LINGER_MS + 3000)).toBe(true);
      expect(Date.now() - doneAt).toBeGreaterThanOrEqual(LISTENER_LINGER_MS);
      await service.releaseLocks(WAITER);
      await service.releaseLocks('PHID-WAIT-next');
    });

    test('a pool of one connection: the LISTEN connection is not taken from the pool, and wakes the waiter', async () => {
      const pooled = await secondDataSource(engine, { poolSize: 1 });
      extraSources.push(pooled);
      try {
        const service = new SlotLockService(pooled, { wait: SLOW_WAIT });
        await service.acquireLocks(HOLDER, ['n(1)']);
        const waiting = track(service.acquireLocks(WAITER, ['n(1)'], { waitMs: 30_000 }));
        await sleep(800);
        expect(await listening()).toBe(1);
        const releasedAt = Date.now();
        await service.releaseLocks(HOLDER);
        expect((await resolution(waiting)).at - releasedAt).toBeLessThan(WAKE_MS);
        expect(await holders(dataSource)).toEqual({ 'n(1)': WAITER });
        await service.close();
      } finally {
        await pooled.destroy();
      }
    });
  });
}
