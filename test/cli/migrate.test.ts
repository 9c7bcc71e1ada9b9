import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl } from '../../src';
import { recreateDatabase, testDatabaseName, withAdmin } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';
import { ENGINES } from '../support/engines';
import { phorgeDdl } from '../support/phorge';

const DATABASE = testDatabaseName('cli_migrate');
const CREATED = testDatabaseName('cli_create_db');

async function hasLockTable(database: string): Promise<boolean> {
  return withAdmin(async (admin) => {
    const rows = (await admin.query(
      "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'drydock_slotlock'",
      [database],
    )) as unknown[];
    return rows.length === 1;
  });
}

afterEach(() => killCli());
afterAll(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${CREATED}\``)));

describe('slotlock migrate', () => {
  beforeAll(() => recreateDatabase(DATABASE));

  it('runs the migration once, then reports the database up to date', async () => {
    const first = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(first).toMatchObject({ code: 0, stderr: '' });
    expect(first.stdout).toContain('ran CreateDrydockSlotLock1442836800000');
    expect(await hasLockTable(DATABASE)).toBe(true);

    const again = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(again).toMatchObject({ code: 0, stderr: '' });
    expect(again.stdout).toContain('up to date');
  });

  it('--revert undoes it (drops the table), then has nothing left to revert', async () => {
    await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    const reverted = await runCli(['migrate', '--revert', '--url', cliUrl(DATABASE)]);
    expect(reverted).toMatchObject({ code: 0, stderr: '' });
    expect(reverted.stdout).toContain('reverted CreateDrydockSlotLock1442836800000');
    expect(await hasLockTable(DATABASE)).toBe(false);

    const nothing = await runCli(['migrate', '--revert', '--url', cliUrl(DATABASE)]);
    expect(nothing).toMatchObject({ code: 0, stderr: '' });
    expect(nothing.stdout).toContain('nothing to revert');

    const back = await runCli(['migrate', '--url', cliUrl(DATABASE)]);
    expect(back.code).toBe(0);
    expect(await hasLockTable(DATABASE)).toBe(true);
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
    expect(await hasLockTable(CREATED)).toBe(true);

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

  it('a migration cut off between CREATE TABLE and its record (MySQL commits DDL at once): the message says how to recover, and that works', async () => {
    // What a lost connection leaves: the table, and TypeORM's migrations table without its row.
    await recreateDatabase(CUT);
    expect((await runCli(['migrate', '--url', cliUrl(CUT)])).code).toBe(0);
    await withAdmin((admin) => admin.query(`DELETE FROM \`${CUT}\`.migrations`));

    const rerun = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: rerun.code, stdout: rerun.stdout, stderr: rerun.stderr }).toEqual({
      code: 1,
      stdout: '',
      stderr: unrecordedTable(cliUrl(CUT), 0),
    });
    // As the message says: drop the empty table, migrate again.
    await withAdmin((admin) => admin.query(`DROP TABLE \`${CUT}\`.drydock_slotlock`));
    const again = await runCli(['migrate', '--url', cliUrl(CUT)]);
    expect({ code: again.code, stderr: again.stderr }).toEqual({ code: 0, stderr: '' });
    expect(again.stdout).toContain('ran CreateDrydockSlotLock1442836800000');
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
