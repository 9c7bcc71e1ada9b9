import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl } from '../../src';
import { recreateDatabase, testDatabaseName, withAdmin } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';
import { ENGINES } from '../support/engines';
import { phorgeDdl } from '../support/phorge';

const DATABASE = testDatabaseName('cli_migrate');
const CREATED = testDatabaseName('cli_create_db');

async function hasTable(database: string, table: string): Promise<boolean> {
  return withAdmin(async (admin) => {
    const rows = (await admin.query(
      'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
      [database, table],
    )) as unknown[];
    return rows.length === 1;
  });
}

async function hasLockTable(database: string): Promise<boolean> {
  return hasTable(database, 'drydock_slotlock');
}

async function hasSessionTable(database: string): Promise<boolean> {
  return hasTable(database, 'drydock_slotlock_session');
}

afterEach(() => killCli());
afterAll(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${CREATED}\``)));

describe('slotlock migrate', () => {
  beforeAll(() => recreateDatabase(DATABASE));

  it('runs both migrations once (the lock table, then the session table), then reports the database up to date', async () => {
    const first = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(first.stdout)).toEqual([
      `ran CreateDrydockSlotLock1442836800000 on ${cliUrl(DATABASE)}`,
      `ran CreateDrydockSlotLockSession1796083200000 on ${cliUrl(DATABASE)}`,
    ]);
    expect(await hasLockTable(DATABASE)).toBe(true);
    expect(await hasSessionTable(DATABASE)).toBe(true);

    const again = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(again.stdout).toContain('up to date');
  });

  it('--revert undoes the last migration: the session table, then the lock table, then nothing is left to revert', async () => {
    await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    const sessions = await runCli(['migrate', '--revert', '--url', cliUrl(DATABASE)]);
    expect(sessions).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(sessions.stdout)).toEqual([
      `reverted CreateDrydockSlotLockSession1796083200000 on ${cliUrl(DATABASE)}`,
    ]);
    expect(await hasSessionTable(DATABASE)).toBe(false);
    expect(await hasLockTable(DATABASE)).toBe(true);

    const locks = await runCli(['migrate', '--revert', '--url', cliUrl(DATABASE)]);
    expect(locks).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(locks.stdout)).toEqual([`reverted CreateDrydockSlotLock1442836800000 on ${cliUrl(DATABASE)}`]);
    expect(await hasLockTable(DATABASE)).toBe(false);

    const nothing = await runCli(['migrate', '--revert', '--url', cliUrl(DATABASE)]);
    expect(nothing).toMatchObject({ code: 0, stderr: '' });
    expect(nothing.stdout).toContain('nothing to revert');

    const back = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(back.code).toBe(0);
    expect(await hasLockTable(DATABASE)).toBe(true);
    expect(await hasSessionTable(DATABASE)).toBe(true);
  });

  it('--create-database creates a missing database first; without it, says to use it', async () => {
    await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${CREATED}\``));

    const missing = await runCli(['migrate', '--url', cliUrl(CREATED)]);
    expect(missing.code).toBe(1);
    expect(linesOf(missing.stderr)).toHaveLength(1);
    expect(missing.stderr).toContain(`"${CREATED}" does not exist`);
    expect(missing.stderr).toContain('--create-database');

    const created = await runCli(['migrate', '--create-database', '--url', cliUrl(CREATED)]);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toContain(`created database "${CREATED}"`);
    expect(created.stdout).toContain('ran CreateDrydockSlotLock1442836800000');
    expect(created.stdout).toContain('ran CreateDrydockSlotLockSession1796083200000');
    expect(await hasLockTable(CREATED)).toBe(true);
    expect(await hasSessionTable(CREATED)).toBe(true);

    const existing = await runCli(['migrate', '--create-database', '--url', cliUrl(CREATED)]);
    expect(existing.code).toBe(0);
    expect(existing.stdout).not.toContain('created database');
  });
});

/** What `slotlock migrate` says when drydock_slotlock exists but TypeORM has no record of creating it. */
function unrecordedTable(url: string, locks: number): string {
  return (
    `slotlock: drydock_slotlock exists on ${url} (it holds ${locks} lock${locks === 1 ? '' : 's'}) but TypeORM has ` +
    "no record of creating it: if it is Phorge's table, use the database as it is, without `slotlock migrate`; " +
    'if an earlier `slotlock migrate` was interrupted after creating it and it is empty, drop it ' +
    '(DROP TABLE drydock_slotlock) and run `slotlock migrate` again\n'
  );
}

/** The same for the session table, which Phorge has not: only an interrupted `slotlock migrate` leaves one. */
function unrecordedSessionTable(url: string, sessions: number): string {
  return (
    `slotlock: drydock_slotlock_session exists on ${url} (it holds ${sessions} session${sessions === 1 ? '' : 's'}) ` +
    'but TypeORM has no record of creating it: if an earlier `slotlock migrate` was interrupted after creating it, ' +
    'drop it (DROP TABLE drydock_slotlock_session) and run `slotlock migrate` again\n'
  );
}

describe('slotlock migrate on a database whose drydock_slotlock TypeORM did not create', () => {
  const PHORGE = testDatabaseName('cli_migrate_phorge');
  const CUT = testDatabaseName('cli_migrate_cut');

  async function tablesOf(database: string): Promise<string[]> {
    return withAdmin(async (admin) => {
      const rows = (await admin.query(
        'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME',
        [database],
      )) as Array<{ name: string }>;
      return rows.map((row) => row.name);
    });
  }

  afterAll(() =>
    withAdmin(async (admin) => {
      for (const database of [PHORGE, CUT]) await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    }),
  );

  it("Phorge's database: refused at once, nothing created (no `migrations` table), nothing on stdout", async () => {
    await recreateDatabase(PHORGE);
    await withAdmin(async (admin) => {
      await admin.query(`USE \`${PHORGE}\``);
      await admin.query(phorgeDdl());
      await admin.query(
        "INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES ('PHID-DRYL-phorge', 'abcdefghijkl', 'host(1)')",
      );
    });
    const result = await runCli(['migrate', '--url', cliUrl(PHORGE)]);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: unrecordedTable(cliUrl(PHORGE), 1),
    });
    expect(await tablesOf(PHORGE)).toEqual(['drydock_slotlock']);
  });

  it('a migration cut off between CREATE TABLE and its record (MySQL commits DDL at once): each message says how to recover, and that works', async () => {
    // What a lost connection leaves: the tables, and TypeORM's migrations table without their rows.
    await recreateDatabase(CUT);
    expect((await runCli(['migrate', '--url', cliUrl(CUT)])).code).toBe(0);
    await withAdmin((admin) => admin.query(`DELETE FROM \`${CUT}\`.migrations`));

    const rerun = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: rerun.code, stdout: rerun.stdout, stderr: rerun.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: unrecordedTable(cliUrl(CUT), 0),
    });
    // As the message says: drop the empty table, migrate again; then the session table's turn.
    await withAdmin((admin) => admin.query(`DROP TABLE \`${CUT}\`.drydock_slotlock`));
    const sessions = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: sessions.code, stdout: sessions.stdout, stderr: sessions.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: unrecordedSessionTable(cliUrl(CUT), 0),
    });
    expect(await hasLockTable(CUT)).toBe(false);
    await withAdmin((admin) => admin.query(`DROP TABLE \`${CUT}\`.drydock_slotlock_session`));
    const again = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toContain('ran CreateDrydockSlotLock1442836800000');
    expect(again.stdout).toContain('ran CreateDrydockSlotLockSession1796083200000');
  });

  it('cut off after the session table, its record lost: refused naming drydock_slotlock_session, never the lock table', async () => {
    await recreateDatabase(CUT);
    expect((await runCli(['migrate', '--url', cliUrl(CUT)])).code).toBe(0);
    await withAdmin((admin) =>
      admin.query(`DELETE FROM \`${CUT}\`.migrations WHERE name = 'CreateDrydockSlotLockSession1796083200000'`),
    );
    const rerun = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: rerun.code, stdout: rerun.stdout, stderr: rerun.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: unrecordedSessionTable(cliUrl(CUT), 0),
    });
    await withAdmin((admin) => admin.query(`DROP TABLE \`${CUT}\`.drydock_slotlock_session`));
    const again = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(linesOf(again.stdout)).toEqual([`ran CreateDrydockSlotLockSession1796083200000 on ${cliUrl(CUT)}`]);
  });
});

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))(
  'slotlock migrate, %s: a lock table without its record is refused before anything is created',
  (_name, engine) => {
    const LABEL = 'cli_migrate_unrecorded';

    it('no `migrations` table is created, stdout stays empty, the message says what to do', async () => {
      await engine.recreate(LABEL);
      const url = engine.url(LABEL);
      expect((await runCli(['migrate', '--url', url])).code).toBe(0);
      const dataSource = new DataSource(dataSourceOptionsFromUrl(url));
      await dataSource.initialize();
      try {
        const runner = dataSource.createQueryRunner();
        await runner.dropTable('migrations');
        await runner.release();
        const result = await runCli(['migrate', '--url', url]);
        expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
          code: 1,
          stdout: '',
          stderr: unrecordedTable(url, 0),
        });
        expect(await dataSource.createQueryRunner().hasTable('migrations')).toBe(false);
      } finally {
        await dataSource.destroy();
      }
    });
  },
);

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))(
  'slotlock migrate, %s: the lock table and the session table',
  (_name, engine) => {
    const LABEL = 'cli_migrate_sessions';

    /** Which of the package's tables exist, and TypeORM's records, read on a DataSource of the test's own. */
    async function schema(): Promise<{ lockTable: boolean; sessionTable: boolean; recorded: string[] }> {
      const dataSource = new DataSource(dataSourceOptionsFromUrl(engine.url(LABEL)));
      await dataSource.initialize();
      const runner = dataSource.createQueryRunner();
      try {
        const rows = (await runner.query(
          `SELECT name FROM ${dataSource.driver.escape('migrations')} ORDER BY id`,
        )) as Array<{ name: string }>;
        return {
          lockTable: await runner.hasTable('drydock_slotlock'),
          sessionTable: await runner.hasTable('drydock_slotlock_session'),
          recorded: rows.map((row) => row.name),
        };
      } finally {
        await runner.release();
        await dataSource.destroy();
      }
    }

    it('creates drydock_slotlock_session beside drydock_slotlock; a database migrated before sessions gets the session table alone; --revert drops it first', async () => {
      await engine.recreate(LABEL);
      const url = engine.url(LABEL);
      const first = await runCli(['migrate', '--url', url]);
      expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
      expect(await schema()).toEqual({
        lockTable: true,
        sessionTable: true,
        recorded: ['CreateDrydockSlotLock1442836800000', 'CreateDrydockSlotLockSession1796083200000'],
      });

      // A database of the days before sessions: the lock table and its record only.
      const reverted = await runCli(['migrate', '--revert', '--url', url]);
      expect(linesOf(reverted.stdout)).toEqual([`reverted CreateDrydockSlotLockSession1796083200000 on ${url}`]);
      expect(await schema()).toEqual({
        lockTable: true,
        sessionTable: false,
        recorded: ['CreateDrydockSlotLock1442836800000'],
      });
      const upgraded = await runCli(['migrate', '--url', url]);
      expect({ code: upgraded.code, stderr: upgraded.stderr }).toEqual({ code: 0, stderr: '' });
      expect(linesOf(upgraded.stdout)).toEqual([`ran CreateDrydockSlotLockSession1796083200000 on ${url}`]);
      expect((await schema()).sessionTable).toBe(true);

      // `slotlock run` then holds its locks under a session there.
      const run = await runCli(['run', '--lock', 'k', '--url', url, '--', 'true']);
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    });

    it('without the session table, run says to migrate or to use --ttl 0, and reap to migrate; run --ttl 0 works', async () => {
      await engine.recreate(LABEL);
      const url = engine.url(LABEL);
      expect((await runCli(['migrate', '--url', url])).code).toBe(0);
      expect((await runCli(['migrate', '--revert', '--url', url])).code).toBe(0);

      const run = await runCli(['run', '--lock', 'k', '--url', url, '--', 'true']);
      expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: '' });
      expect(linesOf(run.stderr)).toEqual([
        `slotlock: the session table does not exist on ${url}: create it with \`slotlock migrate\` (same --url), ` +
          'or run without a session: --ttl 0 (the locks then stay after a kill -9 until released)',
      ]);
      const reap = await runCli(['reap', '--url', url]);
      expect({ code: reap.code, stdout: reap.stdout, stderr: reap.stderr }).toEqual({
        code: 1,
        stdout: '',
        stderr: `slotlock: the session table does not exist on ${url}: create it with \`slotlock migrate\` (same --url)\n`,
      });
      const durable = await runCli(['run', '--ttl', '0', '--lock', 'k', '--url', url, '--', 'true']);
      expect({ code: durable.code, stderr: durable.stderr }).toEqual({ code: 0, stderr: '' });
    });
  },
);

describe('slotlock migrate: TypeORM’s own messages stay off stdout', () => {
  const DENIED = testDatabaseName('cli_migrate_denied');
  const USER = `${testDatabaseName('u')}`.slice(0, 32);

  afterAll(() =>
    withAdmin(async (admin) => {
      await admin.query(`DROP USER IF EXISTS '${USER}'@'%'`);
      await admin.query(`DROP DATABASE IF EXISTS \`${DENIED}\``);
    }),
  );

  it('a migration that fails inside TypeORM (CREATE denied): stdout empty, one line on stderr says what to do', async () => {
    // A user who may create TypeORM's `migrations` table but not the lock table: the
    // migration itself fails, where TypeORM logs `Migration "…" failed` (on stdout by default).
    await recreateDatabase(DENIED);
    await withAdmin(async (admin) => {
      await admin.query(`DROP USER IF EXISTS '${USER}'@'%'`);
      await admin.query(`CREATE USER '${USER}'@'%'`);
      await admin.query(`GRANT SELECT ON \`${DENIED}\`.* TO '${USER}'@'%'`);
      await admin.query(`GRANT CREATE, INSERT, SELECT, DELETE ON \`${DENIED}\`.migrations TO '${USER}'@'%'`);
    });
    const url = cliUrl(DENIED).replace('://root@', `://${USER}@`);
    const result = await runCli(['migrate', '--url', url]);
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: '' });
    expect(linesOf(result.stderr)).toEqual([
      expect.stringMatching(/^slotlock: permission denied on .*CREATE command denied.*; grant the user access/),
    ]);
  });
});
