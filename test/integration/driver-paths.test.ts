import { stripVTControlCharacters } from 'node:util';
import { DataSource, QueryFailedError } from 'typeorm';
import { SlotLockService, dataSourceOptionsFromUrl, digestForIndex } from '../../src';
import { startTcpRelay } from '../support/tcp-relay';
import { testDatabaseName } from '../support/database';
import { ENGINES, freshEngineDataSource, type TestEngine } from '../support/engines';
import { QueryLog } from '../support/query-log';

/**
 * SPEC 4.10: whichever internal path runs a statement (the service's fast autocommit
 * path, or a TypeORM query runner), errors have the same class and the DataSource's
 * logger sees the statement (issue 9, items 10 and 11).
 */

const OWNER = 'PHID-DRYL-paths';
const HOLDER = 'PHID-DRYL-holder';

const MUTATIONS = /^\s*(INSERT|DELETE)/i;

/** The server-side ids of the sessions running an INSERT in the test database `database`, on each server engine. */
async function blockedInsertSessions(engine: TestEngine, admin: DataSource, database: string): Promise<number[]> {
  if (engine.name === 'mariadb') {
    const rows = (await admin.query(
      "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND INFO LIKE 'INSERT%' AND DB = ?",
      [database],
    )) as Array<{ id: number }>;
    return rows.map((row) => Number(row.id));
  }
  const rows = (await admin.query(
    // acquireSlot's statement on PostgreSQL starts WITH free AS (…) INSERT …
    "SELECT pid AS id FROM pg_stat_activity WHERE state = 'active' AND (query LIKE 'INSERT%' OR query LIKE 'WITH%') " +
      'AND datname = $1',
    [database],
  )) as Array<{ id: number }>;
  return rows.map((row) => Number(row.id));
}

async function killSession(engine: TestEngine, admin: DataSource, id: number): Promise<void> {
  if (engine.name === 'mariadb') await admin.query(`KILL ${id}`);
  else await admin.query('SELECT pg_terminate_backend($1)', [id]);
}

async function waitFor<T>(probe: () => Promise<T[]>, timeoutMs = 10_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const SERVER_ENGINES = ENGINES.filter((engine) => engine.name !== 'sqlite');

for (const engine of SERVER_ENGINES)
  describe(`SPEC 4.10 a connection killed under a call, on ${engine.name}`, () => {
    let dataSource: DataSource;
    let admin: DataSource;
    let service: SlotLockService;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, 'paths_kill');
      admin = await freshEngineDataSource(engine, 'paths_kill_admin');
      service = new SlotLockService(dataSource);
    });
    afterAll(async () => {
      await dataSource?.destroy();
      await admin?.destroy();
    });

    /** Holds `key` in an open transaction, starts `call` (which waits for it), kills the caller's session. */
    async function killedWhileWaiting(key: string, call: () => Promise<unknown>): Promise<unknown> {
      const holder = dataSource.createQueryRunner();
      await holder.startTransaction();
      try {
        await holder.query(
          engine.name === 'mariadb'
            ? 'INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)'
            : 'INSERT INTO drydock_slotlock ("ownerPHID", "lockIndex", "lockKey") VALUES ($1, $2, $3)',
          [HOLDER, digestForIndex(key), key],
        );
        const outcome = call().then(
          () => 'resolved',
          (error: unknown) => error,
        );
        const sessions = await waitFor(() => blockedInsertSessions(engine, admin, testDatabaseName('paths_kill')));
        expect(sessions).toHaveLength(1);
        await killSession(engine, admin, sessions[0]!);
        return await outcome;
      } finally {
        if (holder.isTransactionActive) await holder.rollbackTransaction();
        await holder.release();
      }
    }

    test.each([
      ['acquireLocks', (s: SlotLockService, key: string) => s.acquireLocks(OWNER, [key])],
      ['acquireSlot', (s: SlotLockService, key: string) => s.acquireSlot(OWNER, key.replace(/\.slot\(0\)$/, ''), 1)],
      ['commitWithLocks', (s: SlotLockService, key: string) => s.commitWithLocks(OWNER, [key], () => 'done')],
    ])('%s rejects with TypeORM’s QueryFailedError, as every path does', async (method, call) => {
      const key = `killed(${method}).slot(0)`;
      const error = await killedWhileWaiting(key, () => call(service, key));
      expect(error).toBeInstanceOf(QueryFailedError);
      expect(await service.isLockFree(key)).toBe(true);
    });
  });

describe.each(ENGINES)(
  'SPEC 4.10 the DataSource’s logger sees every statement the service sends, on $name',
  (engine) => {
    let dataSource: DataSource;
    let service: SlotLockService;
    const logger = new QueryLog();

    beforeAll(async () => {
      // A custom logger and no `logging` option: the setup the fast path used to skip the logger in.
      dataSource = await freshEngineDataSource(engine, 'paths_logger', { logger });
      service = new SlotLockService(dataSource);
    });
    afterAll(() => dataSource?.destroy());
    beforeEach(async () => {
      await dataSource.query('DELETE FROM drydock_slotlock');
      logger.clear();
    });

    test('acquisitions and releases are logged as they are sent', async () => {
      await service.acquireLocks(OWNER, ['logged(1)', 'logged(2)']);
      await service.releaseLocks(OWNER);
      const mutations = logger.queries.map((query) => query.sql).filter((sql) => MUTATIONS.test(sql));
      expect(mutations.map((sql) => sql.trimStart().slice(0, 6).toUpperCase())).toEqual(['INSERT', 'DELETE']);
    });

    test('a statement that fails is logged as an error', async () => {
      await service.acquireLocks(HOLDER, ['contested']);
      logger.clear();
      await expect(service.acquireLocks(OWNER, ['contested'])).rejects.toThrow('Unable to acquire slot locks');
      const inserts = logger.matching('INSERT').map((query) => query.sql);
      expect(inserts).toHaveLength(1);
      // PostgreSQL's insert reports a held lock by inserting nothing: no error to log there.
      if (engine.name !== 'postgres') expect(logger.errors.map((entry) => entry.sql)).toEqual(inserts);
    });
  },
);

for (const engine of ENGINES)
  describe(`SPEC 4.10 logging switched on later, on ${engine.name}`, () => {
    test('setOptions({ logging: true }) after a first call makes the service’s statements appear in the log', async () => {
      const dataSource = await freshEngineDataSource(engine, 'paths_set_options');
      const service = new SlotLockService(dataSource);
      const lines: string[] = [];
      const spy = jest.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
        // TypeORM colours SQL when the environment says colour is supported (CI=true does).
        lines.push(stripVTControlCharacters(args.map(String).join(' ')));
      });
      try {
        await service.acquireLocks(OWNER, ['before']);
        expect(lines.filter((line) => line.includes('INSERT'))).toEqual([]);
        dataSource.setOptions({ logging: true });
        await service.acquireLocks(OWNER, ['after']);
        await service.releaseLocks(OWNER);
      } finally {
        spy.mockRestore();
        await service.close();
        await dataSource.destroy();
      }
      expect(lines.some((line) => /INSERT INTO .drydock_slotlock./.test(line))).toBe(true);
      expect(lines.some((line) => /DELETE .*FROM .drydock_slotlock./.test(line))).toBe(true);
    });
  });

for (const engine of SERVER_ENGINES)
  describe(`a connection cut under a statement of the service's direct path, on ${engine.name}`, () => {
    test('the statement rejects, and the process goes on (no unhandled driver error event)', async () => {
      await engine.recreate('paths_cut');
      const url = new URL(engine.url('paths_cut'));
      const relay = await startTcpRelay(Number(url.port));
      url.port = String(relay.port);
      const dataSource = new DataSource(dataSourceOptionsFromUrl(url.toString()));
      const direct = new DataSource(dataSourceOptionsFromUrl(engine.url('paths_cut')));
      const uncaught: unknown[] = [];
      const onUncaught = (error: unknown): void => {
        uncaught.push(error);
      };
      process.on('uncaughtException', onUncaught);
      try {
        await direct.initialize();
        await direct.runMigrations();
        await dataSource.initialize();
        const service = new SlotLockService(dataSource);
        // A holder's open transaction makes the service's INSERT wait on the server, in flight.
        const holder = direct.createQueryRunner();
        await holder.startTransaction();
        await holder.query(
          engine.name === 'mariadb'
            ? 'INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)'
            : 'INSERT INTO drydock_slotlock ("ownerPHID", "lockIndex", "lockKey") VALUES ($1, $2, $3)',
          [HOLDER, digestForIndex('cut'), 'cut'],
        );
        const outcome = service.acquireLocks(OWNER, ['cut']).then(
          () => 'resolved',
          (error: unknown) => error,
        );
        await new Promise((resolve) => setTimeout(resolve, 300));
        relay.close(); // every connection through the relay ends at once, mid-statement
        const error = await outcome;
        await holder.rollbackTransaction();
        await holder.release();
        expect(error).toBeInstanceOf(Error);
        await new Promise((resolve) => setTimeout(resolve, 200)); // any late 'error' event would land here
        expect(uncaught).toEqual([]);
      } finally {
        process.removeListener('uncaughtException', onUncaught);
        relay.close();
        await dataSource.destroy().catch(() => undefined);
        await direct.destroy();
      }
    });
  });
