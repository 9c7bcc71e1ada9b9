import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
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

describe('held and locks only read: an existing SQLite file is left exactly as it was', () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'slotlock-readonly-'));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  /** The file's bytes (as a digest) and journal mode, read without changing either. */
  function stateOf(file: string): { bytes: number; sha256: string; journalMode: unknown } {
    const content = readFileSync(file);
    let journalMode: unknown = 'none (empty file)';
    if (content.length > 0) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      journalMode = db.pragma('journal_mode', { simple: true });
      db.close();
    }
    return { bytes: content.length, sha256: createHash('sha256').update(content).digest('hex'), journalMode };
  }

  /** A migrated lock database holding one lock, closed, in `journalMode`. */
  async function lockDatabase(name: string, journalMode: 'delete' | 'wal'): Promise<string> {
    const file = path.join(folder, name);
    const url = `sqlite:${file}`;
    expect((await runCli(['migrate', '--url', url])).code).toBe(0);
    expect((await runCli(['acquire', '--owner', 'PHID-ro', 'k', '--url', url])).code).toBe(0);
    const db = new Database(file);
    db.pragma(`journal_mode = ${journalMode}`);
    db.close();
    // Closed cleanly: a WAL database has no -wal or -shm file left, as after any clean shutdown.
    expect([existsSync(`${file}-wal`), existsSync(`${file}-shm`)]).toEqual([false, false]);
    return file;
  }

  it.each([
    ['a rollback-journal database (journal_mode=delete)', 'delete'],
    ['a WAL database whose -wal and -shm files are gone', 'wal'],
  ] as const)('%s: held and locks answer, and its bytes and journal mode stay the same', async (_what, mode) => {
    const file = await lockDatabase(`${mode}.sqlite`, mode);
    const before = stateOf(file);
    expect(before.journalMode).toBe(mode);
    const held = await runCli(['held', 'k', '--url', `sqlite:${file}`]);
    expect({ code: held.code, stderr: held.stderr }).toEqual({ code: 0, stderr: '' });
    expect(held.stdout).toContain('PHID-ro');
    const locks = await runCli(['locks', '--owner', 'PHID-ro', '--json', '--url', `sqlite:${file}`]);
    expect({ code: locks.code, stderr: locks.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(locks.stdout)).toEqual([{ key: 'k', owner: 'PHID-ro', index: digestForIndex('k') }]);
    expect(stateOf(file)).toEqual(before);
    if (mode === 'delete') expect(existsSync(`${file}-wal`)).toBe(false);
  });

  it('an empty file: says to migrate, and stays empty', async () => {
    const file = path.join(folder, 'empty.sqlite');
    writeFileSync(file, '');
    for (const args of [
      ['held', 'k'],
      ['locks', '--owner', 'o'],
    ]) {
      const result = await runCli([...args, '--url', `sqlite:${file}`]);
      expect({ code: result.code, stderr: result.stderr }).toEqual({
        code: 1,
        stderr: `slotlock: no such table: drydock_slotlock (sqlite:${file}): create the lock table with \`slotlock migrate\` (same --url)\n`,
      });
      expect(stateOf(file).bytes).toBe(0);
    }
    expect(readdirSync(folder).filter((name) => name.startsWith('empty'))).toEqual(['empty.sqlite']);
  });
});
