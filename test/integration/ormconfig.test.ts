import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { MYSQL_SERVER_URL, recreateDatabase, testDatabaseName, withAdmin } from '../support/database';

const ROOT = path.resolve(__dirname, '..', '..');
const DATABASE = testDatabaseName('ormconfig_cli');

/** The TypeORM CLI, as a user runs it against ormconfig.ts (on the test database unless `env` says otherwise). */
function typeorm(
  args: string[],
  env: NodeJS.ProcessEnv = { SLOTLOCK_DATABASE_URL: `${MYSQL_SERVER_URL}/${DATABASE}` },
): string {
  return execFileSync(path.join(ROOT, 'node_modules', '.bin', 'typeorm-ts-node-commonjs'), args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, SLOTLOCK_DATABASE_URL: undefined, ...env, TS_NODE_TRANSPILE_ONLY: '1' },
  });
}

describe('SPEC 6 ormconfig.ts and the TypeORM CLI', () => {
  beforeAll(async () => {
    await recreateDatabase(DATABASE);
  });

  test('migration:run creates the tables; schema:log then has nothing to do; migration:revert drops them, newest first', async () => {
    const ran = typeorm(['migration:run', '-d', 'ormconfig.ts']);
    expect(ran).toContain('CreateDrydockSlotLock1442836800000');
    expect(ran).toContain('CreateDrydockSlotLockSession1796083200000');
    expect(typeorm(['schema:log', '-d', 'ormconfig.ts'])).toMatch(/Your schema is up to date/);
    const tables = await withAdmin((admin) => admin.query(`SHOW TABLES FROM \`${DATABASE}\``));
    expect(JSON.stringify(tables)).toContain('drydock_slotlock');

    expect(JSON.stringify(tables)).toContain('drydock_slotlock_session');

    typeorm(['migration:revert', '-d', 'ormconfig.ts']);
    const showTables = (): Promise<unknown[]> =>
      withAdmin((admin) => admin.query(`SHOW TABLES FROM \`${DATABASE}\` LIKE 'drydock_slotlock%'`));
    expect(JSON.stringify(await showTables())).not.toContain('drydock_slotlock_session');
    expect(JSON.stringify(await showTables())).toContain('drydock_slotlock');
    typeorm(['migration:revert', '-d', 'ormconfig.ts']);
    expect(await showTables()).toEqual([]);
  });

  test('without SLOTLOCK_DATABASE_URL it uses the slotlock command’s default, the embedded SQLite file', () => {
    const dataHome = mkdtempSync(path.join(tmpdir(), 'slotlock-ormconfig-'));
    try {
      const env = { XDG_DATA_HOME: dataHome, HOME: dataHome };
      expect(typeorm(['migration:run', '-d', 'ormconfig.ts'], env)).toContain('CreateDrydockSlotLock1442836800000');
      expect(existsSync(path.join(dataHome, 'drydock-slotlock', 'slotlock.sqlite'))).toBe(true);
      // The command finds the table there: nothing held, exit 0.
      const held = execFileSync(process.execPath, [path.join(ROOT, 'dist', 'cli', 'main.js'), 'held', '--json', 'k'], {
        encoding: 'utf8',
        env: { ...process.env, SLOTLOCK_DATABASE_URL: undefined, ...env },
      });
      expect(JSON.parse(held)).toEqual([]);
    } finally {
      rmSync(dataHome, { recursive: true, force: true });
    }
  });
});
