import { digestForIndex } from '../../src';
import { recreateDatabase, testDatabaseName } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';

const DATABASE = testDatabaseName('cli_locks');
const URL = cliUrl(DATABASE);

/** Where each column starts in a table's lines (the header's words). */
function columnStarts(line: string, words: readonly string[]): number[] {
  return words.map((word) => line.indexOf(word));
}

beforeAll(async () => {
  await recreateDatabase(DATABASE);
  expect((await runCli(['migrate', '--url', URL])).code).toBe(0);
  expect(
    (await runCli(['acquire', '--owner', 'PHID-DRYL-long-owner', 'h(1)', 'workingcopy(xyz)', '--url', URL])).code,
  ).toBe(0);
  expect((await runCli(['acquire', '--owner', 'B', 'licence.slot(0)', '--url', URL])).code).toBe(0);
});
afterEach(() => killCli());

describe('slotlock locks', () => {
  it('prints an aligned table: key, owner, index', async () => {
    const result = await runCli(['locks', '--owner', 'PHID-DRYL-long-owner', '--url', URL]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const [header, ...rows] = linesOf(result.stdout);
    expect(header).toMatch(/^key\s+owner\s+index$/);
    expect(rows).toHaveLength(2);
    const starts = columnStarts(header!, ['key', 'owner', 'index']);
    for (const key of ['h(1)', 'workingcopy(xyz)']) {
      const row = rows.find((line) => line.startsWith(`${key} `))!;
      expect(row).toBeDefined();
      expect(row.indexOf('PHID-DRYL-long-owner')).toBe(starts[1]);
      expect(row.indexOf(digestForIndex(key))).toBe(starts[2]);
    }
  });

  it('--json prints [{key, owner, index}]', async () => {
    const result = await runCli(['locks', '--json', '--owner', 'PHID-DRYL-long-owner', '--url', URL]);
    expect(result.code).toBe(0);
    const locks = JSON.parse(result.stdout) as unknown[];
    expect(locks).toHaveLength(2);
    expect(locks).toEqual(
      expect.arrayContaining([
        { key: 'h(1)', owner: 'PHID-DRYL-long-owner', index: digestForIndex('h(1)') },
        { key: 'workingcopy(xyz)', owner: 'PHID-DRYL-long-owner', index: digestForIndex('workingcopy(xyz)') },
      ]),
    );
  });

  it('says so when the owner holds nothing; --json gives []', async () => {
    const human = await runCli(['locks', '--owner', 'nobody', '--url', URL]);
    expect(human).toMatchObject({ code: 0, stdout: '"nobody" holds no locks\n' });
    const json = await runCli(['locks', '--json', '--owner', 'nobody', '--url', URL]);
    expect(JSON.parse(json.stdout)).toEqual([]);
  });
});

describe('slotlock held', () => {
  it('lists the held keys among those asked, with their owners', async () => {
    const result = await runCli(['held', 'h(1)', 'licence.slot(0)', 'free(9)', '--url', URL]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const [header, ...rows] = linesOf(result.stdout);
    expect(header).toMatch(/^key\s+owner\s+index$/);
    expect(rows).toHaveLength(2);
    expect(rows.find((row) => row.startsWith('h(1) '))).toMatch(/PHID-DRYL-long-owner/);
    expect(rows.find((row) => row.startsWith('licence.slot(0) '))).toMatch(/\bB\b/);
    expect(result.stdout).not.toContain('free(9)');
  });

  it('--json for scripts; [] when all are free', async () => {
    const held = await runCli(['held', '--json', 'licence.slot(0)', 'free(9)', '--url', URL]);
    expect(JSON.parse(held.stdout)).toEqual([
      { key: 'licence.slot(0)', owner: 'B', index: digestForIndex('licence.slot(0)') },
    ]);
    const free = await runCli(['held', '--json', 'free(9)', '--url', URL]);
    expect(JSON.parse(free.stdout)).toEqual([]);
    const human = await runCli(['held', 'free(9)', '--url', URL]);
    expect(human.stdout).toBe('"free(9)" is free\n');
  });
});
