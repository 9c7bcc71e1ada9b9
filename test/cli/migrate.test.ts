import { recreateDatabase, testDatabaseName, withAdmin } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';

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
