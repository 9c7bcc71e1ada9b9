import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { MYSQL_SERVER_URL, recreateDatabase, testDatabaseName, withAdmin } from '../support/database';

const ROOT = path.resolve(__dirname, '..', '..');
const DATABASE = testDatabaseName('ormconfig_cli');

/** The TypeORM CLI, as a user runs it against ormconfig.ts. */
function typeorm(...args: string[]): string {
  return execFileSync(path.join(ROOT, 'node_modules', '.bin', 'typeorm-ts-node-commonjs'), args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, SLOTLOCK_DATABASE_URL: `${MYSQL_SERVER_URL}/${DATABASE}`, TS_NODE_TRANSPILE_ONLY: '1' },
  });
}

describe('SPEC 6 ormconfig.ts and the TypeORM CLI', () => {
  beforeAll(async () => {
    await recreateDatabase(DATABASE);
  });

  test('migration:run creates the table; schema:log then has nothing to do; migration:revert drops it', async () => {
    expect(typeorm('migration:run', '-d', 'ormconfig.ts')).toContain('CreateDrydockSlotLock1442836800000');
    expect(typeorm('schema:log', '-d', 'ormconfig.ts')).toMatch(/Your schema is up to date/);
    const tables = await withAdmin((admin) => admin.query(`SHOW TABLES FROM \`${DATABASE}\``));
    expect(JSON.stringify(tables)).toContain('drydock_slotlock');

    typeorm('migration:revert', '-d', 'ormconfig.ts');
    const after = await withAdmin((admin) => admin.query(`SHOW TABLES FROM \`${DATABASE}\` LIKE 'drydock_slotlock'`));
    expect(after).toEqual([]);
  });
});
