import { recreateDatabase, testDatabaseName } from '../support/database';
import { cliUrl, killCli, linesOf, runCli } from '../support/cli';

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
});
