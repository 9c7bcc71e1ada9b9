import { recreateDatabase, testDatabaseName } from '../support/database';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { POSTGRES_SERVER_URL } from '../support/engines';
import { cliUrl, HIDE_PACKAGES_PRELOAD, killCli, linesOf, runCli } from '../support/cli';

const UNMIGRATED = testDatabaseName('cli_errors');
const UNREACHABLE = 'mysql://root@127.0.0.1:1/x';

/** One line on stderr, no stack trace. */
function expectOneLine(stderr: string): void {
  expect(linesOf(stderr)).toHaveLength(1);
  expect(stderr).not.toContain('    at ');
  expect(stderr).toMatch(/^slotlock: /);
}

beforeAll(() => recreateDatabase(UNMIGRATED));
afterEach(() => killCli());

describe('slotlock errors: one line on stderr, what is wrong and what to do', () => {
  it('an unreachable server: names the URL, exits 1', async () => {
    const result = await runCli(['acquire', '--owner', 'a', 'k', '--url', UNREACHABLE]);
    expect(result.code).toBe(1);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain(UNREACHABLE);
    expect(result.stderr).toContain('connection refused');
  });

  it('hides the password of the URL it names', async () => {
    const result = await runCli(['locks', '--owner', 'a', '--url', 'mysql://root:s3cret@127.0.0.1:1/x']);
    expect(result.code).toBe(1);
    expectOneLine(result.stderr);
    expect(result.stderr).toContain('mysql://root:***@127.0.0.1:1/x');
    expect(result.stderr).not.toContain('s3cret');
  });

  it('reads SLOTLOCK_DATABASE_URL when there is no --url', async () => {
    const result = await runCli(['held', 'k'], { env: { SLOTLOCK_DATABASE_URL: 'mysql://root@127.0.0.1:1/from_env' } });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('mysql://root@127.0.0.1:1/from_env');
  });

  it('a URL of an unsupported scheme, or no URL at all: exits 1', async () => {
    const scheme = await runCli(['held', 'k', '--url', 'redis://127.0.0.1/0']);
    expect(scheme.code).toBe(1);
    expectOneLine(scheme.stderr);
    expect(scheme.stderr).toContain('unsupported database URL scheme "redis:"');

    const garbage = await runCli(['held', 'k', '--url', 'not a url']);
    expect(garbage.code).toBe(1);
    expectOneLine(garbage.stderr);
    expect(garbage.stderr).toContain('not a database URL');
  });

  it('a missing lock table: suggests `slotlock migrate`', async () => {
    for (const args of [
      ['locks', '--owner', 'a'],
      ['acquire', '--owner', 'a', 'k'],
      ['release', '--owner', 'a'],
    ]) {
      const result = await runCli([...args, '--url', cliUrl(UNMIGRATED)]);
      expect(result.code).toBe(1);
      expectOneLine(result.stderr);
      expect(result.stderr).toContain('`slotlock migrate`');
      expect(result.stderr).toContain(cliUrl(UNMIGRATED));
    }
  });

  it('bad arguments the service refuses: one line, exit 2', async () => {
    const empty = await runCli(['acquire', '--owner', '', 'k', '--url', UNREACHABLE]);
    expect(empty.code).toBe(2);
    expectOneLine(empty.stderr);
    expect(empty.stderr).toContain('--owner must not be empty');

    const emptyKey = await runCli(['acquire', '--owner', 'a', 'k', '', '--url', UNREACHABLE]);
    expect(emptyKey.code).toBe(2);
    expect(emptyKey.stderr).toContain('lock key #2 must not be empty');

    // Only the service knows the limit: it refuses before any query, after connecting.
    await recreateDatabase(UNMIGRATED);
    const long = await runCli(['acquire', '--owner', 'o'.repeat(65), 'k', '--url', cliUrl(UNMIGRATED)]);
    expect(long.code).toBe(2);
    expectOneLine(long.stderr);
    expect(long.stderr).toContain('--owner must be at most 64 UTF-8 bytes');
  });

  it("commander's usage errors exit 2 as well", async () => {
    for (const args of [
      ['acquire', 'k'], // no --owner
      ['acquire', '--owner', 'a'], // no key
      ['acquire', '--owner', 'a', '--wait', 'soon', 'k'],
      ['locks', '--owner', 'a', '--bogus'],
      ['no-such-command'],
      ['run', '--owner', 'a', '--', 'true'], // no --lock
    ]) {
      const result = await runCli(args);
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toMatch(/^slotlock: /);
      expect(result.stderr).not.toContain('    at ');
    }
  });

  it.each([
    ['run', '--ttl', 'abc'],
    ['run', '--ttl', '-1'],
    ['run', '--ttl', '0.2'],
    ['run', '--ttl', ''],
    ['run', '--wait', '-1'],
    ['acquire', '--wait', '-1'],
    ['acquire', '--wait', 'abc'],
  ])('%s %s %j: exit 2, the message names the option, nothing connects', async (command, option, value) => {
    const args =
      command === 'run'
        ? ['run', option, value, '--lock', 'k', '--url', UNREACHABLE, '--', 'true']
        : ['acquire', '--owner', 'a', option, value, 'k', '--url', UNREACHABLE];
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`^slotlock: option '${option} <seconds>' argument '${value}' is invalid`));
    expect(result.stderr).not.toContain('connection refused');
  });

  it.each(['foo://bar', 'foo:bar', 'foo://user:pw@host/db'])(
    '%s: says the scheme is not supported (not that it names no database)',
    async (url) => {
      const result = await runCli(['held', 'k', '--url', url]);
      expect(result.code).toBe(1);
      expectOneLine(result.stderr);
      expect(result.stderr).toContain('unsupported database URL scheme "foo:"');
      expect(result.stderr).toContain('supported: mysql:, mariadb:, postgres:, postgresql:, sqlite:');
    },
  );
});

describe('slotlock without the driver of its database', () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'slotlock-driver-'));
  });
  afterAll(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  /** slotlock with `packages` made to look uninstalled. */
  function without(packages: string, args: readonly string[]): ReturnType<typeof runCli> {
    return runCli(args, {
      nodeArgs: ['--require', HIDE_PACKAGES_PRELOAD],
      env: { SLOTLOCK_TEST_HIDE_PACKAGES: packages },
    });
  }

  it.each([
    ['pg', 'PostgreSQL', `${POSTGRES_SERVER_URL}/postgres`],
    ['mysql2', 'MySQL/MariaDB', cliUrl(UNMIGRATED)],
    ['better-sqlite3', 'SQLite', 'sqlite:'],
  ])('no %s: one line naming the package to install, exit 1', async (packageName, engine, url) => {
    const file = path.join(folder, `${packageName}.sqlite`);
    const target = url === 'sqlite:' ? `sqlite:${file}` : url;
    // migrate: the command that would create a SQLite file, so the driver is what stops it.
    for (const args of [
      ['migrate', '--url', target],
      ['migrate', '--create-database', '--url', target],
    ]) {
      const result = await without(packageName, args);
      expect({ args, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        args,
        code: 1,
        stdout: '',
        stderr: `slotlock: the ${engine} driver is not installed: npm install ${packageName}\n`,
      });
    }
    expect(existsSync(file)).toBe(false);
  });

  it('the other drivers are optional: MySQL works with pg and better-sqlite3 missing', async () => {
    await recreateDatabase(UNMIGRATED);
    const result = await without('pg,better-sqlite3', ['migrate', '--url', cliUrl(UNMIGRATED)]);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    const held = await without('pg,better-sqlite3', ['held', 'k', '--url', cliUrl(UNMIGRATED)]);
    expect(held).toMatchObject({ code: 0, stderr: '', stdout: '"k" is free\n' });
    await recreateDatabase(UNMIGRATED);
  });
});
