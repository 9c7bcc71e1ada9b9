import { DataSource, type DataSourceOptions } from 'typeorm';
import {
  SlotLockException,
  SlotLockService,
  SlotLockSessionError,
  SlotLockSessionLostError,
  dataSourceOptionsFromUrl,
  slotLockMigrations,
} from '../../src';
import { ENGINES, clearLocks, countOwned, freshEngineDataSource, lockRows } from '../support/engines';

const OTHER = 'PHID-DRYL-other0000000000000';

/** Makes a session's row expire now, as the server's clock sees it (a process that stopped renewing). */
async function expireSession(dataSource: DataSource, owner: string): Promise<void> {
  const type = dataSource.options.type;
  const table =
    type === 'postgres'
      ? '"drydock_slotlock_session"'
      : type === 'better-sqlite3'
        ? '"drydock_slotlock_session"'
        : '`drydock_slotlock_session`';
  const column = type === 'mariadb' || type === 'mysql' ? '`expiresAt`' : '"expiresAt"';
  const ownerColumn = type === 'mariadb' || type === 'mysql' ? '`ownerPHID`' : '"ownerPHID"';
  const p = type === 'postgres' ? '$1' : '?';
  await dataSource.query(`UPDATE ${table} SET ${column} = 0 WHERE ${ownerColumn} = ${p}`, [owner]);
}

async function sessionRows(dataSource: DataSource): Promise<number> {
  const rows: Array<{ n: string | number }> = await dataSource.query(
    'SELECT COUNT(*) AS n FROM drydock_slotlock_session',
  );
  return Number(rows[0]!.n);
}

describe.each(ENGINES)('SPEC 9 sessions on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'sessions');
    service = new SlotLockService(dataSource);
  });
  afterAll(async () => {
    await service?.close();
    await dataSource?.destroy();
  });
  beforeEach(async () => {
    await clearLocks(dataSource);
    await dataSource.query('DELETE FROM drydock_slotlock_session');
  });

  test('openSession writes a row, its owner takes locks, close() releases them and the row', async () => {
    const session = await service.openSession({ ttlMs: 5000 });
    expect(session.ownerPHID).toMatch(/^PHID-SESS-[a-z0-9]{20}$/);
    expect(session.signal.aborted).toBe(false);
    expect(await sessionRows(dataSource)).toBe(1);
    await service.acquireLocks(session.ownerPHID, ['host(1)', 'host(2)']);
    expect(await countOwned(dataSource, session.ownerPHID)).toBe(2);
    expect(await session.close()).toBe(2);
    expect(await sessionRows(dataSource)).toBe(0);
    expect(await lockRows(dataSource)).toEqual([]);
    expect(session.signal.aborted).toBe(false);
  });

  test("an acquisition that meets an expired session's locks reaps them and takes its keys", async () => {
    const dead = await service.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-dead' });
    await service.acquireLocks(dead.ownerPHID, ['host(1)', 'host(9)']);
    await expireSession(dataSource, dead.ownerPHID);
    await service.acquireLocks(OTHER, ['host(1)']);
    const rows = await lockRows(dataSource);
    expect(rows.map((row) => [row.lockKey, row.ownerPHID])).toEqual([['host(1)', OTHER]]);
    expect(await sessionRows(dataSource)).toBe(0);
    // The dead session learns it at its next renewal; the service refuses it further locks.
    await expect(service.acquireLocks(dead.ownerPHID, ['host(2)'])).rejects.toBeInstanceOf(SlotLockSessionLostError);
    expect(dead.signal.aborted).toBe(true);
    expect(dead.signal.reason).toBeInstanceOf(SlotLockSessionLostError);
    expect(await countOwned(dataSource, dead.ownerPHID)).toBe(0);
    await dead.close();
  });

  test('a live session is never reaped: its locks stay held', async () => {
    const live = await service.openSession({ ttlMs: 5000 });
    await service.acquireLocks(live.ownerPHID, ['host(1)']);
    await expect(service.acquireLocks(OTHER, ['host(1)'])).rejects.toBeInstanceOf(SlotLockException);
    expect(await service.reapExpiredSessions()).toEqual({ sessions: 0, locks: 0 });
    expect(await countOwned(dataSource, live.ownerPHID)).toBe(1);
    await live.close();
  });

  test('acquireSlot reaps an expired session that holds the whole family', async () => {
    const dead = await service.openSession({ ttlMs: 5000 });
    await service.acquireSlot(dead.ownerPHID, 'licence', 1);
    await expireSession(dataSource, dead.ownerPHID);
    await expect(service.acquireSlot(OTHER, 'licence', 1)).resolves.toMatchObject({
      slot: 0,
      lockKey: 'licence.slot(0)',
    });
    await dead.close();
  });

  test('a session acquires inside the caller transaction, and a lost one is refused there too', async () => {
    const session = await service.openSession({ ttlMs: 5000 });
    await dataSource.transaction((manager) => service.acquireLocks(session.ownerPHID, ['k1'], { manager }));
    await dataSource.transaction((manager) => service.acquireSlot(session.ownerPHID, 'fam', 3, { manager }));
    expect(await countOwned(dataSource, session.ownerPHID)).toBe(2);
    await expireSession(dataSource, session.ownerPHID);
    await expect(
      dataSource.transaction((manager) => service.acquireLocks(session.ownerPHID, ['k2'], { manager })),
    ).rejects.toBeInstanceOf(SlotLockSessionLostError);
    await session.close();
  });

  test('reapExpiredSessions frees every expired session, and nothing else', async () => {
    const a = await service.openSession({ ttlMs: 5000 });
    const b = await service.openSession({ ttlMs: 5000 });
    const c = await service.openSession({ ttlMs: 5000 });
    await service.acquireLocks(a.ownerPHID, ['a1', 'a2']);
    await service.acquireLocks(b.ownerPHID, ['b1']);
    await service.acquireLocks(c.ownerPHID, ['c1']);
    await service.acquireLocks(OTHER, ['durable']);
    await expireSession(dataSource, a.ownerPHID);
    await expireSession(dataSource, b.ownerPHID);
    expect(await service.reapExpiredSessions()).toEqual({ sessions: 2, locks: 3 });
    expect((await lockRows(dataSource)).map((row) => row.lockKey).sort()).toEqual(['c1', 'durable']);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('the heartbeat keeps a session alive past its TTL, and a deleted row aborts its signal within a TTL', async () => {
    const session = await service.openSession({ ttlMs: 1200 });
    await service.acquireLocks(session.ownerPHID, ['beat']);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(session.signal.aborted).toBe(false);
    expect(await service.reapExpiredSessions()).toEqual({ sessions: 0, locks: 0 });
    const p = engine.name === 'postgres' ? '$1' : '?';
    const deletedAt = Date.now();
    await dataSource.query(
      `DELETE FROM drydock_slotlock_session WHERE ${engine.name === 'mariadb' ? 'ownerPHID' : '"ownerPHID"'} = ${p}`,
      [session.ownerPHID],
    );
    await new Promise<void>((resolve) => session.signal.addEventListener('abort', () => resolve(), { once: true }));
    expect(Date.now() - deletedAt).toBeLessThanOrEqual(1200 + 300);
    await session.close();
  });

  test('withLocks with ttlMs runs fn under a session and ends it', async () => {
    const seen = await service.withLocks(
      'PHID-SESS-with',
      ['w1'],
      async ({ signal }) => {
        expect(signal.aborted).toBe(false);
        return [await sessionRows(dataSource), await countOwned(dataSource, 'PHID-SESS-with')];
      },
      { ttlMs: 5000 },
    );
    expect(seen).toEqual([1, 1]);
    expect(await sessionRows(dataSource)).toBe(0);
    expect(await lockRows(dataSource)).toEqual([]);
  });

  test('openSession refuses a live owner of another process, and takes over an expired one', async () => {
    const first = await service.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-same' });
    const inProcess = await service.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-same' }).catch((error) => error);
    expect(inProcess).toBeInstanceOf(SlotLockSessionError);
    expect([inProcess.name, inProcess.problem, inProcess.ownerPHID]).toEqual([
      'SlotLockSessionError',
      'owner-in-use',
      'PHID-SESS-same',
    ]);
    expect(inProcess.message).toMatch(/open already/);
    const other = new SlotLockService(dataSource);
    const refused = await other.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-same' }).catch((error) => error);
    expect(refused).toBeInstanceOf(SlotLockSessionError);
    expect(refused.problem).toBe('owner-in-use');
    expect(refused.message).toMatch(/live session/);
    await service.acquireLocks(first.ownerPHID, ['same']);
    await expireSession(dataSource, first.ownerPHID);
    const second = await other.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-same' });
    expect(await countOwned(dataSource, 'PHID-SESS-same')).toBe(0);
    await second.close();
    await first.close();
  });

  test('without the session table, openSession and reapExpiredSessions say which migrations to run; conflicts stay conflicts', async () => {
    const bare = new DataSource({
      ...dataSourceOptionsFromUrl(engine.url('sessions')),
      migrations: [...slotLockMigrations],
    } as DataSourceOptions);
    await bare.initialize();
    const runner = bare.createQueryRunner();
    try {
      await runner.renameTable('drydock_slotlock_session', 'drydock_slotlock_session_away');
      const plain = new SlotLockService(bare);
      const missing = await plain.openSession().catch((error) => error);
      expect(missing).toBeInstanceOf(SlotLockSessionError);
      expect(missing.problem).toBe('no-session-table');
      expect(missing.message).toMatch(/slotLockSessionMigrations/);
      await expect(plain.reapExpiredSessions()).rejects.toBeInstanceOf(SlotLockSessionError);
      await plain.acquireLocks(OTHER, ['bare']);
      await expect(plain.acquireLocks('PHID-DRYL-second', ['bare'])).rejects.toMatchObject({
        name: 'SlotLockException',
        failure: 'held',
      });
      await plain.close();
    } finally {
      await runner.renameTable('drydock_slotlock_session_away', 'drydock_slotlock_session');
      await runner.release();
      await bare.destroy();
    }
  });

  test('a session reaped and replaced by a later one of its owner can neither renew nor end the later one', async () => {
    const first = await service.openSession({ ttlMs: 900, ownerPHID: 'PHID-SESS-reused' });
    await service.acquireLocks(first.ownerPHID, ['first-key']);
    await expireSession(dataSource, first.ownerPHID);
    // Another process opens the same owner: it reaps the expired session (and its lock) and takes over.
    const other = new SlotLockService(dataSource);
    const later = await other.openSession({ ttlMs: 5000, ownerPHID: 'PHID-SESS-reused' });
    await other.acquireLocks(later.ownerPHID, ['later-key']);
    // The first one's heartbeat (every 300 ms) finds no row of its own: it is lost, and renewed nothing.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(first.signal.reason).toBeInstanceOf(SlotLockSessionLostError);
    expect(await first.close()).toBe(0);
    expect(await sessionRows(dataSource)).toBe(1);
    expect((await lockRows(dataSource)).map((row) => row.lockKey)).toEqual(['later-key']);
    expect(later.signal.aborted).toBe(false);
    expect(await later.close()).toBe(1);
    await other.close();
  });

  test('bad session options are refused before any query', async () => {
    await expect(service.openSession({ ttlMs: 10 })).rejects.toThrow(RangeError);
    await expect(service.openSession({ ttlMs: 1.5 as number })).rejects.toThrow(/options.ttlMs/);
    await expect(service.openSession({ ownerPHID: '' })).rejects.toThrow(/ownerPHID/);
    await expect(service.withLocks('o', ['k'], () => 1, { ttlMs: -1 })).rejects.toThrow(RangeError);
    expect(await sessionRows(dataSource)).toBe(0);
  });
});
