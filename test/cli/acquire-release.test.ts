import { DataSource } from 'typeorm';
import { allRows, dataSourceOptions, recreateDatabase, testDatabaseName } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';

const DATABASE = testDatabaseName('cli_acquire');
const URL = cliUrl(DATABASE);
let dataSource: DataSource;

/** `{ owner: [keys] }` of the lock table, keys sorted. */
async function holdings(): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const row of await allRows(dataSource)) (result[row.ownerPHID] ??= []).push(row.lockKey);
  for (const keys of Object.values(result)) keys.sort();
  return result;
}

beforeAll(async () => {
  await recreateDatabase(DATABASE);
  expect((await runCli(['migrate', '--url', URL])).code).toBe(0);
  dataSource = new DataSource(dataSourceOptions(DATABASE));
  await dataSource.initialize();
});
afterAll(() => dataSource?.destroy());
beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));
afterEach(() => killCli());

describe('slotlock acquire', () => {
  it('takes every key and says so', async () => {
    const result = await runCli(['acquire', '--owner', 'PHID-A', 'host(1)', 'host(2)', '--url', URL]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain('acquired 2 locks for "PHID-A"');
    expect(await holdings()).toEqual({ 'PHID-A': ['host(1)', 'host(2)'] });
  });

  it('exits 75 naming each held key and its owner, and takes nothing', async () => {
    await runCli(['acquire', '--owner', 'PHID-A', 'host(1)', 'host(2)', '--url', URL]);
    const result = await runCli(['acquire', '--owner', 'PHID-B', 'host(2)', 'host(3)', '--url', URL]);
    expect(result.code).toBe(75);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('1 lock is held, nothing taken');
    expect(result.stderr).toMatch(/^host\(2\)\s+PHID-A$/m);
    expect(result.stderr).not.toContain('host(3)');
    expect(await holdings()).toEqual({ 'PHID-A': ['host(1)', 'host(2)'] });
  });

  it('--json reports a conflict for scripts', async () => {
    await runCli(['acquire', '--owner', 'PHID-A', 'host(1)', '--url', URL]);
    const result = await runCli(['acquire', '--json', '--owner', 'PHID-B', 'host(1)', '--url', URL]);
    expect(result.code).toBe(75);
    expect(JSON.parse(result.stdout)).toMatchObject({
      acquired: false,
      owner: 'PHID-B',
      held: [{ key: 'host(1)', owner: 'PHID-A' }],
      failure: 'held',
    });
  });
  // --wait, and signals during it: wait-reap.test.ts, on every engine.
});

describe('slotlock release', () => {
  it('prints how many locks it released, 0 when none', async () => {
    await runCli(['acquire', '--owner', 'PHID-A', 'a', 'b', '--url', URL]);
    await runCli(['acquire', '--owner', 'PHID-B', 'c', '--url', URL]);

    const result = await runCli(['release', '--owner', 'PHID-A', '--url', URL]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(linesOf(result.stdout)).toEqual(['released 2 locks of "PHID-A"']);
    expect(await holdings()).toEqual({ 'PHID-B': ['c'] });

    const again = await runCli(['release', '--owner', 'PHID-A', '--url', URL]);
    expect(linesOf(again.stdout)).toEqual(['released 0 locks of "PHID-A"']);

    const json = await runCli(['release', '--json', '--owner', 'PHID-B', '--url', URL]);
    expect(JSON.parse(json.stdout)).toEqual({ owner: 'PHID-B', released: 1 });
  });
});
