import { DataSource, type DataSourceOptions, type EntityManager } from 'typeorm';
import { SlotLockException, SlotLockService, digestForIndex } from '../../src';
import { freshDataSource, setGlobals } from '../support/database';
import {
  ENGINES,
  countOwned,
  createScratchTable,
  freshEngineDataSource,
  lockRows,
  type TestEngine,
} from '../support/engines';

/**
 * SPEC 4.10 inside a caller's transaction: several calls in flight on one transaction
 * are each all or nothing, a small pool never hangs a call, a failure says what
 * happened, and a manager of another DataSource is refused (issue 9, items 3, 6, 8, 9).
 */

const OTHER = 'PHID-DRYL-other';

/** Settles within `ms`, or rejects saying the call hung: a hang must fail the test, not time it out. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms);
  });
  return Promise.race([promise, hung]).finally(() => clearTimeout(timer));
}

/** Runs `fn` after the event loop has turned once: after the I/O already queued has gone out. */
async function afterATurn<T>(fn: () => Promise<T>): Promise<T> {
  await new Promise((resolve) => setImmediate(resolve));
  return fn();
}

/** Asserts each call's outcome matches the table: resolved means all its keys held by it, rejected means none. */
async function expectEachAllOrNothing(
  dataSource: DataSource,
  calls: Array<{ owner: string; keys: string[]; outcome: PromiseSettledResult<unknown> }>,
): Promise<void> {
  const rows = await lockRows(dataSource);
  for (const { owner, keys, outcome } of calls) {
    const held = rows.filter((row) => row.ownerPHID === owner).map((row) => row.lockKey);
    if (outcome.status === 'fulfilled') expect(held.sort()).toEqual([...keys].sort());
    else {
      expect(outcome.reason).toBeInstanceOf(SlotLockException);
      expect(held).toEqual([]);
    }
  }
}

describe.each(ENGINES)('SPEC 4.10 several calls in flight on one transaction, on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'shared_tx');
    service = new SlotLockService(dataSource);
  });
  afterAll(() => dataSource?.destroy());
  beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));

  test.each([
    ['the failing call first', false],
    ['the failing call second', true],
  ])('a call that fails undoes none of another call’s rows (%s)', async (_label, swap) => {
    for (let round = 0; round < 5; round += 1) {
      await dataSource.query('DELETE FROM drydock_slotlock');
      await service.acquireLocks(OTHER, [`taken(${round})`]);
      const failing = { owner: `A${round}`, keys: [`a(${round}).1`, `taken(${round})`, `a(${round}).2`] };
      const passing = { owner: `B${round}`, keys: [`b(${round}).1`, `b(${round}).2`] };
      const order = swap ? [passing, failing] : [failing, passing];
      const outcomes = await dataSource.transaction((manager) =>
        Promise.allSettled(order.map((call) => service.acquireLocks(call.owner, call.keys, { manager }))),
      );
      const settled = order.map((call, i) => ({ ...call, outcome: outcomes[i]! }));
      expect(settled.find((call) => call.owner === passing.owner)!.outcome.status).toBe('fulfilled');
      expect(settled.find((call) => call.owner === failing.owner)!.outcome.status).toBe('rejected');
      await expectEachAllOrNothing(dataSource, settled);
    }
  });

  test('the caller’s own statement in flight beside a failing call is not undone by it', async () => {
    await createScratchTable(dataSource, 'app_row', [{ name: 'id', type: 'int' }]);
    await service.acquireLocks(OTHER, ['taken']);
    for (let round = 0; round < 5; round += 1) {
      await dataSource.query('DELETE FROM app_row');
      const [acquired, written] = await dataSource.transaction((manager) =>
        Promise.allSettled([
          service.acquireLocks('A', ['a.1', 'taken'], { manager }),
          // Sent once the call's first statements are on their way (a savepoint, on PostgreSQL).
          afterATurn(() => manager.query(`INSERT INTO app_row (id) VALUES (${round})`)),
        ]),
      );
      expect(acquired.status).toBe('rejected');
      expect(written.status).toBe('fulfilled');
      expect(await dataSource.query('SELECT id FROM app_row')).toEqual([{ id: round }]);
    }
  });

  test('a release in flight beside a failing acquisition is not undone by it', async () => {
    await service.acquireLocks(OTHER, ['taken']);
    await service.acquireLocks('R', ['r.1', 'r.2']);
    const [acquired, released] = await dataSource.transaction((manager) =>
      Promise.allSettled([
        service.acquireLocks('A', ['a.1', 'taken'], { manager }),
        service.releaseLocks('R', { manager }),
      ]),
    );
    expect(acquired.status).toBe('rejected');
    expect(released).toEqual({ status: 'fulfilled', value: 2 });
    expect(await countOwned(dataSource, 'R')).toBe(0);
    expect(await countOwned(dataSource, 'A')).toBe(0);
  });

  test('several acquireSlot calls in flight on one transaction take distinct slots', async () => {
    const taken = await dataSource.transaction((manager) =>
      Promise.all(['s1', 's2', 's3'].map((owner) => service.acquireSlot(owner, 'family', 3, { manager }))),
    );
    expect(new Set(taken.map((slot) => slot.slot)).size).toBe(3);
    const rows = await lockRows(dataSource);
    expect(rows.map((row) => row.lockKey).sort()).toEqual(taken.map((slot) => slot.lockKey).sort());
  });

  test('in a large family with three free slots (the server’s scan), calls in flight take exactly those', async () => {
    const free = [17, 640, 1199];
    await service.acquireLocks(
      OTHER,
      Array.from({ length: 1200 }, (_, slot) => slot)
        .filter((slot) => !free.includes(slot))
        .map((slot) => `large.slot(${slot})`),
    );
    const taken = await dataSource.transaction((manager) =>
      Promise.all(['s1', 's2', 's3'].map((owner) => service.acquireSlot(owner, 'large', 1200, { manager }))),
    );
    expect(taken.map((slot) => slot.slot).sort((a, b) => a - b)).toEqual(free);
    const full = (await dataSource
      .transaction((manager) => service.acquireSlot('s4', 'large', 1200, { manager }))
      .catch((e: unknown) => e)) as SlotLockException;
    expect(full).toBeInstanceOf(SlotLockException);
    expect(full.failure).toBe('held');
    expect(Object.keys(full.getLockMap()).length).toBeLessThanOrEqual(32);
  });
});

for (const engine of ENGINES.filter((candidate) => candidate.name === 'mariadb')) {
  describe(`SPEC 4.10 chunked acquisitions in flight on one transaction, on ${engine.name} with 1 MiB packets`, () => {
    let dataSource: DataSource;
    let service: SlotLockService;
    let restore: () => Promise<void>;

    beforeAll(async () => {
      // Small packets, so that 300 keys of 8 KB take several INSERTs.
      restore = await setGlobals({ max_allowed_packet: 1024 * 1024 });
      dataSource = await freshDataSource('shared_tx_chunked');
      service = new SlotLockService(dataSource);
    });
    afterAll(async () => {
      await dataSource?.destroy();
      await restore?.();
    });

    test('a chunked call that fails undoes its own rows only, not the caller’s statement in flight beside it', async () => {
      await createScratchTable(dataSource, 'app_row', [{ name: 'id', type: 'int' }]);
      const keys = Array.from({ length: 300 }, (_, i) => `undo(${i})`.padEnd(8 * 1024, '.'));
      const last = [...keys].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1)).at(-1)!;
      await service.acquireLocks(OTHER, [last]);
      const [acquired, written] = await dataSource.transaction((manager) =>
        Promise.allSettled([
          service.acquireLocks('U', keys, { manager }),
          afterATurn(() => manager.query('INSERT INTO app_row (id) VALUES (1)')),
        ]),
      );
      expect(acquired.status).toBe('rejected');
      expect(written.status).toBe('fulfilled');
      expect(await dataSource.query('SELECT id FROM app_row')).toEqual([{ id: 1 }]);
      expect(await countOwned(dataSource, 'U')).toBe(0);
      await service.releaseLocks(OTHER);
    });

    test('each of two chunked calls is all or nothing', async () => {
      const big = (prefix: string): string[] =>
        Array.from({ length: 300 }, (_, i) => `${prefix}(${i})`.padEnd(8 * 1024, '.'));
      for (let round = 0; round < 3; round += 1) {
        await dataSource.query('DELETE FROM drydock_slotlock');
        const failingKeys = big(`fail${round}`);
        // Held by someone else: the key whose index sorts last, so its INSERT is the last chunk.
        const last = [...failingKeys].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1)).at(-1)!;
        await service.acquireLocks(OTHER, [last]);
        const calls = [
          { owner: `F${round}`, keys: failingKeys },
          { owner: `P${round}`, keys: big(`pass${round}`) },
        ];
        const outcomes = await dataSource.transaction((manager) =>
          Promise.allSettled(calls.map((call) => service.acquireLocks(call.owner, call.keys, { manager }))),
        );
        expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'fulfilled']);
        await expectEachAllOrNothing(
          dataSource,
          calls.map((call, i) => ({ ...call, outcome: outcomes[i]! })),
        );
      }
    });
  });
}

const SERVER_ENGINES = ENGINES.filter((engine) => engine.name !== 'sqlite');

for (const engine of SERVER_ENGINES)
  describe(`SPEC 4.10 acquireSlot in a caller’s transaction on a small pool, on ${engine.name}`, () => {
    async function pooled(size: number): Promise<DataSource> {
      return freshEngineDataSource(engine, `shared_tx_pool${size}`, { poolSize: size } as Partial<DataSourceOptions>);
    }

    test('a pool of one connection: acquireSlot resolves, and a full family rejects with its holders', async () => {
      const dataSource = await pooled(1);
      const service = new SlotLockService(dataSource);
      try {
        const slot = await within(
          10_000,
          dataSource.transaction((manager) => service.acquireSlot('one', 'tiny', 1, { manager })),
          'acquireSlot on a pool of one',
        );
        expect(slot).toEqual({ slot: 0, lockKey: 'tiny.slot(0)', attempts: 1 });
        const error = await within(
          10_000,
          dataSource
            .transaction((manager) => service.acquireSlot('two', 'tiny', 1, { manager }))
            .catch((e: unknown) => e),
          'a conflicting acquireSlot on a pool of one',
        );
        expect(error).toBeInstanceOf(SlotLockException);
        expect((error as SlotLockException).failure).toBe('held');
        expect((error as SlotLockException).getLockMap()).toEqual({ 'tiny.slot(0)': 'one' });
      } finally {
        await dataSource.destroy();
      }
    });

    test('a pool of one connection: a large full family is decided by the server’s scan, on that connection', async () => {
      const dataSource = await pooled(1);
      const service = new SlotLockService(dataSource);
      try {
        await service.acquireLocks(
          'holder',
          Array.from({ length: 100 }, (_, slot) => `full.slot(${slot})`),
        );
        const error = await within(
          10_000,
          dataSource
            .transaction((manager) => service.acquireSlot('late', 'full', 100, { manager }))
            .catch((e: unknown) => e),
          'acquireSlot of a full family on a pool of one',
        );
        expect(error).toBeInstanceOf(SlotLockException);
        expect((error as SlotLockException).failure).toBe('held');
        const lockMap = (error as SlotLockException).getLockMap();
        expect(Object.keys(lockMap).length).toBeGreaterThan(0);
        expect(Object.keys(lockMap).length).toBeLessThanOrEqual(32);
        expect(new Set(Object.values(lockMap))).toEqual(new Set(['holder']));
      } finally {
        await dataSource.destroy();
      }
    });

    test('a pool of three and three transactions each calling acquireSlot: all resolve, on distinct slots', async () => {
      const dataSource = await pooled(3);
      const service = new SlotLockService(dataSource);
      try {
        const slots = await within(
          10_000,
          Promise.all(
            ['c1', 'c2', 'c3'].map(async (owner) => {
              // Three transactions inserting into one family can deadlock each other on
              // MySQL (SPEC 8); the victim is told so (contention) and, as an app would,
              // runs its transaction again. What must not happen is a hang.
              for (;;) {
                try {
                  return await dataSource.transaction(async (manager) => {
                    await manager.query('SELECT 1');
                    return service.acquireSlot(owner, 'trio', 3, { manager });
                  });
                } catch (error) {
                  if (!(error instanceof SlotLockException) || error.failure !== 'contention') throw error;
                }
              }
            }),
          ),
          'three acquireSlot calls on a pool of three',
        );
        expect(new Set(slots.map((slot) => slot.slot)).size).toBe(3);
      } finally {
        await dataSource.destroy();
      }
    });
  });

describe.each(ENGINES)('SPEC 4.10 acquireSlot stopped by contention says so, on $name', (engine) => {
  let dataSource: DataSource;
  let other: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'shared_tx_contention');
    // A second DataSource on the same database: another process's view of it.
    other = new DataSource({ ...dataSource.options, migrations: [] } as DataSourceOptions);
    await other.initialize();
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await other?.destroy();
  });
  beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));

  /**
   * Each engine's contention inside a caller's transaction: two SERIALIZABLE
   * transactions that read the family and then write into it (PostgreSQL: 40001), a
   * snapshot older than a holder's commit (SQLite WAL: SQLITE_BUSY_SNAPSHOT), or a lock
   * wait that times out (MariaDB: 1205).
   */
  async function contended(engineName: TestEngine['name'], slotKey: string): Promise<unknown> {
    const otherService = new SlotLockService(other);
    if (engineName === 'mariadb') {
      const holder = other.createQueryRunner();
      await holder.startTransaction();
      try {
        await otherService.acquireLocks(OTHER, [slotKey], { manager: holder.manager });
        return await dataSource.transaction(async (manager) => {
          await manager.query('SET SESSION innodb_lock_wait_timeout = 1');
          return service.acquireSlot('victim', 'busy', 1, { manager }).catch((e: unknown) => e);
        });
      } finally {
        await holder.rollbackTransaction();
        await holder.release();
      }
    }
    if (engineName === 'postgres') {
      const rival = other.createQueryRunner();
      await rival.startTransaction('SERIALIZABLE');
      try {
        await rival.query('SELECT COUNT(*) AS n FROM drydock_slotlock');
        return await dataSource.transaction('SERIALIZABLE', async (manager) => {
          await manager.query('SELECT COUNT(*) AS n FROM drydock_slotlock');
          await otherService.acquireLocks(OTHER, [slotKey], { manager: rival.manager });
          await rival.commitTransaction();
          return service.acquireSlot('victim', 'busy', 2, { manager }).catch((e: unknown) => e);
        });
      } finally {
        if (rival.isTransactionActive) await rival.rollbackTransaction();
        await rival.release();
      }
    }
    return dataSource.transaction(async (manager) => {
      await manager.query('SELECT COUNT(*) AS n FROM drydock_slotlock'); // the snapshot starts here
      await otherService.acquireLocks(OTHER, [slotKey]); // committed after it
      return service.acquireSlot('victim', 'busy', 1, { manager }).catch((e: unknown) => e);
    });
  }

  test('failure is "contention", not "held" with an empty lock map', async () => {
    const error = (await contended(engine.name, 'busy.slot(0)')) as SlotLockException;
    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.failure).toBe('contention');
    expect(await countOwned(dataSource, 'victim')).toBe(0);
  });
});

describe.each(ENGINES)('SPEC 4.10 a manager of another DataSource, on $name', (engine) => {
  let dataSource: DataSource;
  let elsewhere: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'shared_tx_mine');
    elsewhere = await freshEngineDataSource(engine, 'shared_tx_elsewhere');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await elsewhere?.destroy();
  });

  test.each([
    ['acquireLocks', (manager: EntityManager): Promise<unknown> => service.acquireLocks('o', ['k'], { manager })],
    ['acquireSlot', (manager: EntityManager) => service.acquireSlot('o', 'fam', 2, { manager })],
    ['releaseLocks', (manager: EntityManager) => service.releaseLocks('o', { manager })],
  ])('%s refuses it with a TypeError, and writes nothing anywhere', async (_method, call) => {
    await service.acquireLocks('o', ['before']);
    const error = await elsewhere.transaction((manager) => call(manager)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(/^options\.manager belongs to another DataSource/);
    expect(await lockRows(elsewhere)).toEqual([]);
    expect((await lockRows(dataSource)).map((row) => row.lockKey)).toEqual(['before']);
    await service.releaseLocks('o');
  });
});

for (const engine of ENGINES.filter((candidate) => candidate.name === 'mariadb')) {
  describe(`SPEC 4.10 calls queued on a transaction the server rolled back, on ${engine.name}`, () => {
    let dataSource: DataSource;
    let service: SlotLockService;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, 'shared_tx_deadlock', {
        poolSize: 5,
      } as Partial<DataSourceOptions>);
      service = new SlotLockService(dataSource);
    });
    afterAll(() => dataSource?.destroy());

    test('a deadlock under one call: the calls queued behind it are refused, nothing runs in autocommit', async () => {
      const heavy = Array.from({ length: 200 }, (_, i) => `heavy(${i})`);
      let xHasC: () => void = () => undefined;
      const xReady = new Promise<void>((resolve) => (xHasC = resolve));
      let calls: Array<PromiseSettledResult<unknown>> = [];
      // X holds kC, then asks for kA and kB at once; Y (heavier: InnoDB's victim is X)
      // holds kA and asks for kC: a deadlock under X's first call.
      const x = dataSource
        .transaction(async (manager) => {
          await service.acquireLocks('PHID-X', ['kC'], { manager });
          xHasC();
          await new Promise((resolve) => setTimeout(resolve, 400));
          calls = await Promise.allSettled([
            service.acquireLocks('PHID-X', ['kA'], { manager }),
            service.acquireLocks('PHID-X', ['kB'], { manager }),
            service.releaseLocks('PHID-X', { manager }),
          ]);
          throw new Error('X gives up');
        })
        .catch(() => undefined);
      const y = dataSource
        .transaction(async (manager) => {
          await service.acquireLocks('PHID-Y', [...heavy, 'kA'], { manager });
          await xReady;
          await service.acquireLocks('PHID-Y', ['kC'], { manager }).catch(() => undefined);
          throw new Error('Y rolls back');
        })
        .catch(() => undefined);
      await Promise.all([x, y]);
      expect(calls.map((call) => call.status)).toEqual(['rejected', 'rejected', 'rejected']);
      for (const call of calls.slice(0, 2)) {
        expect((call as PromiseRejectedResult).reason).toBeInstanceOf(SlotLockException);
        expect(((call as PromiseRejectedResult).reason as SlotLockException).transactionRolledBack).toBe(true);
      }
      expect(String((calls[2] as PromiseRejectedResult).reason)).toMatch(/releaseLocks\(\{ manager \}\) not sent/);
      expect(await lockRows(dataSource)).toEqual([]);
    });
  });
}
