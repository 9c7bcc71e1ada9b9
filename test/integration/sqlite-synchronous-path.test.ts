import Database from 'better-sqlite3';
import type { DataSource } from 'typeorm';
import { SlotLockException, SlotLockService } from '../../src';
import { ENGINES, freshEngineDataSource } from '../support/engines';
import { QueryLog } from '../support/query-log';

/**
 * Issue 12, item 1: on SQLite the service runs its usual acquisition (one INSERT) and its
 * release (one DELETE) at once and synchronously while its own connection is idle,
 * without the promise layers of a queued unit. These tests hold that shortcut to what the
 * queued path does: the statement has run (and committed) when the call returns, a
 * conflict is the same SlotLockException, a unit in flight is never joined or
 * overtaken, and a file locked by another connection is waited out.
 */
const SQLITE = ENGINES.filter((engine) => engine.name === 'sqlite');

const OWNER = 'PHID-DRYL-sync';
const HOLDER = 'PHID-DRYL-sync-holder';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

for (const engine of SQLITE)
  describe(`the synchronous path of the service's own statements, on ${engine.name}`, () => {
    let dataSource: DataSource;
    let service: SlotLockService;
    let raw: Database.Database;
    const logger = new QueryLog();
    const heldBy = (owner: string): string[] =>
      (
        raw.prepare('SELECT lockKey FROM drydock_slotlock WHERE ownerPHID = ? ORDER BY lockKey').all(owner) as Array<{
          lockKey: string;
        }>
      ).map((row) => row.lockKey);

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, 'sync_path', { logger });
      service = new SlotLockService(dataSource);
      // Another connection to the same file, as another process would have.
      raw = new Database(dataSource.options.database as string);
      // The service's own connection opens with its first call.
      await service.acquireLocks(OWNER, ['warm-up']);
      await service.releaseLocks(OWNER);
    });
    afterAll(async () => {
      raw?.close();
      await service?.close();
      await dataSource?.destroy();
    });
    beforeEach(() => {
      raw.prepare('DELETE FROM drydock_slotlock').run();
      logger.clear();
    });

    test('an idle connection: the INSERT and the DELETE are committed before the call returns', async () => {
      const acquiring = service.acquireLocks(OWNER, ['sync(b)', 'sync(a)']);
      // Read on another connection before the promise settles: already committed.
      expect(heldBy(OWNER)).toEqual(['sync(a)', 'sync(b)']);
      await acquiring;
      const releasing = service.releaseLocks(OWNER);
      expect(heldBy(OWNER)).toEqual([]);
      expect(await releasing).toBe(2);
      expect(logger.matching('INSERT')).toHaveLength(1);
      expect(logger.matching('DELETE')).toHaveLength(1);
    });

    test('a held lock: the same SlotLockException as ever, its lock map read, one INSERT sent', async () => {
      await service.acquireLocks(HOLDER, ['contested(1)']);
      logger.clear();
      const error = (await service.acquireLocks(OWNER, ['contested(1)', 'free(1)']).catch((e: unknown) => e)) as
        SlotLockException | undefined;
      expect(error).toBeInstanceOf(SlotLockException);
      expect(error!.failure).toBe('held');
      expect(error!.attempts).toBe(1);
      expect(error!.getLockMap()).toEqual({ 'contested(1)': HOLDER });
      expect(logger.matching('INSERT')).toHaveLength(1);
      expect(heldBy(OWNER)).toEqual([]); // all or nothing: free(1) was not taken either
    });

    test('a unit in flight (commitWithLocks awaiting in its work) is neither joined nor overtaken, and its rollback keeps the later call’s locks', async () => {
      const inWork = deferred();
      const letWorkEnd = deferred();
      const unit = service.commitWithLocks(OWNER, ['unit(1)'], async () => {
        inWork.resolve();
        await letWorkEnd.promise;
        throw new Error('work failed');
      });
      await inWork.promise;
      const later = service.acquireLocks(HOLDER, ['later(1)']);
      // Queued behind the unit: nothing of it has run, so nothing could land in the unit's transaction.
      expect(heldBy(HOLDER)).toEqual([]);
      letWorkEnd.resolve();
      await expect(unit).rejects.toThrow('work failed');
      await later;
      expect(heldBy(OWNER)).toEqual([]); // rolled back with its unit
      expect(heldBy(HOLDER)).toEqual(['later(1)']); // committed on its own
    });

    test('the file locked by another connection: the call waits it out and then takes its locks', async () => {
      raw.prepare('BEGIN IMMEDIATE').run();
      let settled = false;
      const acquiring = service.acquireLocks(OWNER, ['busy(1)']).finally(() => (settled = true));
      // The statement that met "busy" is not sent again straight away: the usual way's pause comes first.
      expect(logger.matching('INSERT')).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(settled).toBe(false);
      raw.prepare('COMMIT').run();
      await acquiring;
      expect(heldBy(OWNER)).toEqual(['busy(1)']);
      raw.prepare('BEGIN IMMEDIATE').run();
      logger.clear();
      const releasing = service.releaseLocks(OWNER);
      expect(logger.matching('DELETE')).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(heldBy(OWNER)).toEqual(['busy(1)']);
      raw.prepare('COMMIT').run();
      expect(await releasing).toBe(1);
      expect(heldBy(OWNER)).toEqual([]);
    });

    test('after close() the connection reopens on the next call, by the queued path, and the shortcut resumes', async () => {
      await service.close();
      await service.acquireLocks(OWNER, ['reopened(1)']);
      expect(heldBy(OWNER)).toEqual(['reopened(1)']);
      const releasing = service.releaseLocks(OWNER);
      expect(heldBy(OWNER)).toEqual([]);
      expect(await releasing).toBe(1);
    });
  });

for (const engine of SQLITE)
  describe(`the service's own SQLite connection, beside the app's, on ${engine.name}`, () => {
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

    /** A fresh database of its own for one test, a service on it, both closed afterwards. */
    async function withOwnDatabase(
      label: string,
      test: (dataSource: DataSource, service: SlotLockService) => Promise<void>,
      extra: Record<string, unknown> = {},
    ): Promise<void> {
      const dataSource = await freshEngineDataSource(engine, label, extra);
      const service = new SlotLockService(dataSource);
      try {
        await test(dataSource, service);
      } finally {
        await service.close();
        await dataSource.destroy();
      }
    }

    test('a call started from a unit’s work after that unit ended runs on its own, not inside a later unit (whose rollback would take its locks)', () =>
      withOwnDatabase('own_leaked', async (_dataSource, service) => {
        let late: Promise<void> | undefined;
        await service.commitWithLocks(OWNER, ['first-unit'], () => {
          // Runs after this unit has committed, in the context its timer was set in.
          setTimeout(() => {
            late = service.acquireLocks(HOLDER, ['late(1)']);
          }, 50);
        });
        const laterUnit = service.commitWithLocks('PHID-DRYL-later', ['later-unit'], async () => {
          await sleep(150);
          throw new Error('the later unit fails');
        });
        await sleep(100);
        await late;
        await expect(laterUnit).rejects.toThrow('the later unit fails');
        expect(await service.isLockFree('late(1)')).toBe(false);
        expect(await service.isLockFree('later-unit')).toBe(true);
      }));

    test('calls queued behind another service’s close() on the same DataSource reopen the connection and succeed', () =>
      withOwnDatabase('own_close_queue', async (dataSource, working) => {
        const closing = new SlotLockService(dataSource);
        await closing.acquireLocks(OWNER, ['opened']);
        await closing.releaseLocks(OWNER);
        const closed = closing.close();
        const calls: Array<Promise<void>> = [];
        for (let i = 0; i < 4; i += 1) {
          // A turn of the microtask queue between calls: close() takes its place in the queue among them.
          await Promise.resolve();
          calls.push(working.acquireLocks(`PHID-DRYL-q${i}`, [`queued(${i})`]));
        }
        await closed;
        await expect(Promise.all(calls)).resolves.toHaveLength(4);
        for (let i = 0; i < 4; i += 1) expect(await working.isLockFree(`queued(${i})`)).toBe(false);
      }));

    test('a subscriber registered after the service’s connection opened sees its statements', () =>
      withOwnDatabase('own_late_subscriber', async (dataSource, service) => {
        await service.acquireLocks(OWNER, ['before']);
        const seen: string[] = [];
        dataSource.subscribers.push({ beforeQuery: (event) => void seen.push(event.query.trimStart().slice(0, 6)) });
        await service.releaseLocks(OWNER);
        await service.acquireLocks(OWNER, ['after']);
        expect(seen).toEqual(['DELETE', 'INSERT']);
      }));

    test('an app whose prepareDatabase sets a busy timeout: the service still waits for a locked file without blocking the event loop', () =>
      withOwnDatabase(
        'own_busy_timeout',
        async (dataSource, service) => {
          const other = new Database(dataSource.options.database as string);
          try {
            await service.acquireLocks(OWNER, ['opened']);
            other.prepare('BEGIN IMMEDIATE').run();
            const before = Date.now();
            const acquiring = service.acquireLocks(HOLDER, ['waited']);
            // With the app's 2 s busy timeout the statement would have blocked right here for 2 s.
            expect(Date.now() - before).toBeLessThan(1000);
            await sleep(100);
            other.prepare('COMMIT').run();
            await acquiring;
            expect(await service.isLockFree('waited')).toBe(false);
          } finally {
            other.close();
          }
        },
        { prepareDatabase: (db: Database.Database) => void db.pragma('busy_timeout = 2000') },
      ));
  });
