import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DataSource } from 'typeorm';
import { SLOT_LOCK_CHANNELS, SlotLockException, SlotLockService, digestForIndex } from '../../src';
import { dataSourceOptions, freshDataSource, testDatabaseName } from '../support/database';
import {
  deadlockCount,
  endTransaction,
  heavyTransaction,
  keysInIndexOrder,
  waitForBlockedInsert,
} from '../support/contention';

const OWNER = 'PHID-DRYL-victim';
const RIVAL = 'PHID-DRYL-rival';
/**
 * Fresh keys for every test: reusing a key that an earlier test deleted would meet its
 * delete-marked record, whose duplicate check takes gap locks and changes who waits.
 */
let FIRST = '';
let SECOND = '';
let round = 0;
beforeEach(() => {
  round += 1;
  [FIRST, SECOND] = keysInIndexOrder(`contended(${round}.a)`, `contended(${round}.b)`);
});

function insertAs(runner: { query: DataSource['query'] }, owner: string, key: string): Promise<unknown> {
  return runner.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
    owner,
    digestForIndex(key),
    key,
  ]);
}

describe('SPEC 4.4 contention', () => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshDataSource('contention', process.env.DEBUG_SQL ? { logging: true } : {});
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await dataSource.query('DELETE FROM drydock_slotlock');
  });

  /**
   * The rival holds SECOND (and many other rows); the victim's INSERT takes FIRST and
   * waits for SECOND; then the rival asks for FIRST: a deadlock whose victim is ours.
   */
  async function provokeDeadlock<T>(victim: () => Promise<T>): Promise<{ outcome: Promise<T>; deadlocks: number }> {
    const before = await deadlockCount(dataSource);
    const rival = await heavyTransaction(dataSource, RIVAL, [SECOND]);
    const outcome = victim();
    outcome.catch(() => undefined);
    await waitForBlockedInsert(dataSource, OWNER);
    await insertAs(rival, RIVAL, FIRST);
    await endTransaction(rival);
    return { outcome, deadlocks: (await deadlockCount(dataSource)) - before };
  }

  test('a deadlock in the service’s own transaction is retried, and the locks are taken', async () => {
    const retries: unknown[] = [];
    const onRetry = (message: unknown): void => {
      retries.push(message);
    };
    subscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
    const { outcome, deadlocks } = await provokeDeadlock(() => service.acquireLocks(OWNER, [SECOND, FIRST]));
    await expect(outcome).resolves.toBeUndefined();
    unsubscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
    expect(deadlocks).toBeGreaterThanOrEqual(1);
    expect(retries).toContainEqual({ ownerPHID: OWNER, operation: 'acquireLocks', attempt: 1, code: 1213 });
    expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey).sort()).toEqual([FIRST, SECOND].sort());
  });

  test('when retries run out, the caller gets a SlotLockException, never the raw 1213', async () => {
    const { outcome } = await provokeDeadlock(() =>
      service.acquireLocks(OWNER, [FIRST, SECOND], { retry: { attempts: 1 } }),
    );
    const error = (await outcome.catch((e: unknown) => e)) as SlotLockException;
    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.failure).toBe('contention');
    expect(error.attempts).toBe(1);
    expect((error.cause as { errno?: number }).errno).toBe(1213);
    expect(error.message).toMatch(
      /^Unable to acquire slot locks.* Gave up under lock contention .* after 1 attempt\.$/,
    );
    expect(await service.loadLocks(OWNER)).toEqual([]);
  });

  test('commitWithLocks retries the whole unit after a deadlock', async () => {
    let workRuns = 0;
    const { outcome, deadlocks } = await provokeDeadlock(() =>
      service.commitWithLocks(OWNER, [FIRST, SECOND], () => {
        workRuns += 1;
        return 'done';
      }),
    );
    await expect(outcome).resolves.toBe('done');
    expect(deadlocks).toBeGreaterThanOrEqual(1);
    expect(workRuns).toBe(1);
    expect(await service.loadLocks(OWNER)).toHaveLength(2);
  });

  test('a deadlock inside the caller’s transaction: SlotLockException saying the transaction was rolled back', async () => {
    const rival = await heavyTransaction(dataSource, RIVAL, [SECOND]);
    let caught: unknown;
    try {
      await dataSource
        .transaction(async (manager) => {
          await service.acquireLocks(OWNER, [FIRST], { manager });
          const rivalWaits = insertAs(rival, RIVAL, FIRST);
          rivalWaits.catch(() => undefined);
          await waitForBlockedInsert(dataSource, RIVAL);
          caught = await service.acquireLocks(OWNER, [SECOND], { manager }).catch((e: unknown) => e);
          await rivalWaits;
          throw caught;
        })
        .catch(() => undefined);
    } finally {
      await endTransaction(rival);
    }
    const error = caught as SlotLockException;
    expect(error).toBeInstanceOf(SlotLockException);
    expect(error.failure).toBe('contention');
    expect(error.transactionRolledBack).toBe(true);
    expect((error.cause as { errno?: number }).errno).toBe(1213);
    expect(error.message).toContain('rolled back your transaction');
    expect(await service.loadLocks(OWNER)).toEqual([]);
  });

  describe('lock-wait timeouts (innodb_lock_wait_timeout = 1 s)', () => {
    let oneConnection: DataSource;
    let patient: SlotLockService;

    beforeAll(async () => {
      // One pooled connection, so the session setting below applies to every call.
      oneConnection = new DataSource(dataSourceOptions(testDatabaseName('contention'), { poolSize: 1 }));
      await oneConnection.initialize();
      await oneConnection.query('SET SESSION innodb_lock_wait_timeout = 1');
      patient = new SlotLockService(oneConnection);
    });
    afterAll(async () => {
      await oneConnection?.destroy();
    });

    test('are retried: the caller gets the lock once the holder gives up', async () => {
      const holder = await heavyTransaction(dataSource, RIVAL, [FIRST]);
      const outcome = patient.acquireLocks(OWNER, [FIRST]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await endTransaction(holder);
      await expect(outcome).resolves.toBeUndefined();
      expect(await service.loadLocks(OWNER)).toHaveLength(1);
    });

    test('surface as SlotLockException (cause 1205) when retries run out', async () => {
      const holder = await heavyTransaction(dataSource, RIVAL, [FIRST]);
      try {
        const error = (await patient
          .acquireLocks(OWNER, [FIRST], { retry: { attempts: 2 } })
          .catch((e: unknown) => e)) as SlotLockException;
        expect(error).toBeInstanceOf(SlotLockException);
        expect(error.failure).toBe('contention');
        expect(error.attempts).toBe(2);
        expect((error.cause as { errno?: number }).errno).toBe(1205);
      } finally {
        await endTransaction(holder);
      }
    });

    test('inside the caller’s transaction: SlotLockException, and the transaction stays open', async () => {
      const holder = await heavyTransaction(dataSource, RIVAL, [FIRST]);
      let caught: unknown;
      let stillOpen = false;
      try {
        await oneConnection.transaction(async (manager) => {
          await manager.query('SET SESSION innodb_lock_wait_timeout = 1');
          // The manager is oneConnection's, so the call goes through its service (SPEC 4.10).
          await patient.acquireLocks(OWNER, [SECOND], { manager });
          caught = await patient.acquireLocks(OWNER, [FIRST], { manager }).catch((e: unknown) => e);
          const [row] = (await manager.query('SELECT COUNT(*) AS n FROM drydock_slotlock WHERE ownerPHID = ?', [
            OWNER,
          ])) as Array<{ n: string }>;
          stillOpen = Number(row!.n) === 1;
        });
      } finally {
        await endTransaction(holder);
      }
      const error = caught as SlotLockException;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(error.failure).toBe('contention');
      expect(error.transactionRolledBack).toBe(false);
      expect((error.cause as { errno?: number }).errno).toBe(1205);
      expect(stillOpen).toBe(true);
      expect((await service.loadLocks(OWNER)).map((lock) => lock.lockKey)).toEqual([SECOND]);
    });
  });
});
