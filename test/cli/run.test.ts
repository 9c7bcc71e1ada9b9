import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { allRows, dataSourceOptions, recreateDatabase, testDatabaseName } from '../support/database';
import { CLI_MAIN, cliUrl, killCli, runCli, startCli } from '../support/cli';

const DATABASE = testDatabaseName('cli_run');
const URL = cliUrl(DATABASE);
/**
 * slotlock in a session of its own, with no controlling terminal whoever runs the tests
 * (with one, slotlock passes no signal on: the terminal signals the command itself).
 */
const NO_TERMINAL = { detached: true } as const;
let dataSource: DataSource;

/** `node -e <script>`, as the command slotlock runs. */
function node(script: string): string[] {
  return [process.execPath, '-e', script];
}

async function holders(): Promise<Array<{ owner: string; key: string }>> {
  return (await allRows(dataSource)).map((row) => ({ owner: row.ownerPHID, key: row.lockKey }));
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

describe('slotlock run', () => {
  it("exits with the command's code and releases the locks after", async () => {
    const result = await runCli([
      'run',
      '--owner',
      'R1',
      '--lock',
      'job(1)',
      '--url',
      URL,
      '--',
      ...node('process.exit(7)'),
    ]);
    expect(result.code).toBe(7);
    expect(await holders()).toEqual([]);
  });

  it('holds every lock while the command runs (the command sees them held)', async () => {
    const result = await runCli([
      'run',
      '--owner',
      'R2',
      '--lock',
      'job(1)',
      '--lock',
      'job(2)',
      '--url',
      URL,
      '--',
      process.execPath,
      CLI_MAIN,
      'held',
      '--json',
      'job(1)',
      'job(2)',
      '--url',
      URL,
    ]);
    expect(result.code).toBe(0);
    const seen = JSON.parse(result.stdout) as Array<{ key: string; owner: string }>;
    expect(seen.map((lock) => [lock.key, lock.owner]).sort()).toEqual([
      ['job(1)', 'R2'],
      ['job(2)', 'R2'],
    ]);
    expect(await holders()).toEqual([]);
  });

  it('without --owner, owns the locks as slotlock-run(<hostname>:<pid>)', async () => {
    const running = startCli([
      'run',
      '--lock',
      'job(1)',
      '--url',
      URL,
      '--',
      process.execPath,
      CLI_MAIN,
      'held',
      '--json',
      'job(1)',
      '--url',
      URL,
    ]);
    const result = await running.result;
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      expect.objectContaining({ key: 'job(1)', owner: `slotlock-run(${os.hostname()}:${running.child.pid})` }),
    ]);
  });

  // Without a terminal (a service, CI): slotlock passes the signals it gets on to the command.
  it('passes SIGTERM on to the command, releases the locks, exits 128+15', async () => {
    const running = startCli(
      [
        'run',
        '--owner',
        'R3',
        '--lock',
        'job(1)',
        '--url',
        URL,
        '--',
        ...node("console.log('child started'); setInterval(() => {}, 1000)"),
      ],
      NO_TERMINAL,
    );
    await running.waitForOutput(/child started/);
    expect(await holders()).toEqual([{ owner: 'R3', key: 'job(1)' }]);

    running.child.kill('SIGTERM');
    const result = await running.result;
    expect(result.signal).toBeNull();
    expect(result.code).toBe(128 + os.constants.signals.SIGTERM);
    expect(await holders()).toEqual([]);
  });

  it('lets a command that handles the signal finish, and exits with its code', async () => {
    const running = startCli(
      [
        'run',
        '--owner',
        'R4',
        '--lock',
        'job(1)',
        '--url',
        URL,
        '--',
        ...node(
          "process.on('SIGTERM', () => { console.log('child got SIGTERM'); process.exit(3); }); console.log('child started'); setInterval(() => {}, 1000)",
        ),
      ],
      NO_TERMINAL,
    );
    await running.waitForOutput(/child started/);
    running.child.kill('SIGTERM');
    const result = await running.result;
    expect(result.stdout).toContain('child got SIGTERM');
    expect(result.code).toBe(3);
    expect(await holders()).toEqual([]);
  });

  it('exits 75 without running the command when a lock is held', async () => {
    const marker = path.join(os.tmpdir(), `slotlock-run-test-${process.pid}-${Date.now()}`);
    expect((await runCli(['acquire', '--owner', 'OTHER', 'job(2)', '--url', URL])).code).toBe(0);

    const result = await runCli([
      'run',
      '--owner',
      'R5',
      '--lock',
      'job(1)',
      '--lock',
      'job(2)',
      '--url',
      URL,
      '--',
      ...node(`require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`),
    ]);
    expect(result.code).toBe(75);
    expect(result.stderr).toMatch(/^job\(2\)\s+OTHER$/m);
    expect(fs.existsSync(marker)).toBe(false);
    expect(await holders()).toEqual([{ owner: 'OTHER', key: 'job(2)' }]);
  });

  it('exits 127 when the command does not exist, and releases the locks', async () => {
    const result = await runCli([
      'run',
      '--owner',
      'R6',
      '--lock',
      'job(1)',
      '--url',
      URL,
      '--',
      'no-such-command-slotlock-test',
    ]);
    expect(result.code).toBe(127);
    expect(result.stderr).toContain('cannot run "no-such-command-slotlock-test": command not found');
    expect(await holders()).toEqual([]);
  });

  it('passes the options after the command on to it', async () => {
    // No -- before the command: everything after it is the command's, options included.
    const script = 'console.log(JSON.stringify(process.argv.slice(1)))';
    const args = ['--', '--owner', 'x', '--', '-v']; // node -e SCRIPT -- ARGS: the first -- is node's
    const result = await runCli(['run', '--owner', 'R7', '--lock', 'job(1)', '--url', URL, ...node(script), ...args]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(['--owner', 'x', '--', '-v']);
    expect(await holders()).toEqual([]);
  });
});
