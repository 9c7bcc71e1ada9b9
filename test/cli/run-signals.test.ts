import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { allRows, dataSourceOptions, recreateDatabase, testDatabaseName } from '../support/database';
import { CLI_MAIN, cliUrl, killCli, runCli, startCli, type RunningCli } from '../support/cli';

/**
 * `slotlock run` and signals: the command gets each signal once, whoever sent it and
 * however (to slotlock alone, to its process group, from a terminal), finishes its
 * cleanup, and the locks are released after. The command is signal-counter.js.
 *
 * Two deliveries of one signal to the command can merge into one when the second comes
 * before the command has handled the first, which hides a double delivery by chance. So
 * the tests send each signal while slotlock is stopped (SIGSTOP): whatever reaches the
 * command directly is handled first, and only then may slotlock pass anything on.
 */
const DATABASE = testDatabaseName('cli_run_signals');
const URL = cliUrl(DATABASE);
const COUNTER = path.join(__dirname, '..', 'support', 'signal-counter.js');
const TERMINAL_SHELL = path.join(__dirname, '..', 'support', 'terminal-shell.js');
/** How long the command gets to handle what reached it directly, while slotlock is stopped. */
const DIRECT_DELIVERY_MS = 300;
/** signal-counter.js's exit code after its cleanup. */
const COUNTER_EXIT = 42;

let dataSource: DataSource;
let folder: string;
let reportNumber = 0;

/** What the counter reported: the signals it got, its process group and its terminal's foreground group. */
interface CounterReport {
  readonly counts: Partial<Record<NodeJS.Signals, number>>;
  readonly pid: number;
  readonly pgrp: number;
  readonly tpgid: number;
}

/** A fresh report file, and the `slotlock run` arguments that run the counter writing to it. */
function counterRun(owner: string): { report: string; args: string[] } {
  reportNumber += 1;
  const report = path.join(folder, `report-${reportNumber}.json`);
  return {
    report,
    args: ['run', '--owner', owner, '--lock', 'job(1)', '--url', URL, '--', process.execPath, COUNTER, report],
  };
}

function readReport(file: string): CounterReport {
  if (!existsSync(file)) throw new Error(`the command wrote no report (${file}): its cleanup did not finish`);
  return JSON.parse(readFileSync(file, 'utf8')) as CounterReport;
}

async function holders(): Promise<string[]> {
  return (await allRows(dataSource)).map((row) => `${row.ownerPHID} ${row.lockKey}`);
}

/** The pid in the counter's "ready" line, and its parent's (slotlock's). */
function counterPids(output: string): { pid: number; parent: number } {
  const match = /counter ready: pid (\d+), parent (\d+)/.exec(output);
  if (match === null) throw new Error(`no "counter ready" line in ${JSON.stringify(output)}`);
  return { pid: Number(match[1]), parent: Number(match[2]) };
}

/**
 * Sends `signal` to `target` while slotlock (`slotlockPid`) is stopped, then lets it go
 * on: what reaches the command directly is handled before slotlock can pass anything on.
 */
async function signalWhileSlotlockIsStopped(slotlockPid: number, send: () => void): Promise<void> {
  process.kill(slotlockPid, 'SIGSTOP');
  try {
    send();
    await new Promise((resolve) => setTimeout(resolve, DIRECT_DELIVERY_MS));
  } finally {
    try {
      process.kill(slotlockPid, 'SIGCONT');
    } catch {
      // ESRCH: the signal killed slotlock, stopped or not; the assertions that follow say so.
    }
  }
}

beforeAll(async () => {
  folder = mkdtempSync(path.join(tmpdir(), 'slotlock-signals-'));
  await recreateDatabase(DATABASE);
  expect((await runCli(['migrate', '--url', URL])).code).toBe(0);
  dataSource = new DataSource(dataSourceOptions(DATABASE));
  await dataSource.initialize();
});
afterAll(async () => {
  await dataSource?.destroy();
  rmSync(folder, { recursive: true, force: true });
});
beforeEach(() => dataSource.query('DELETE FROM drydock_slotlock'));
afterEach(() => killCli());

describe('slotlock run without a terminal (a script, a service, CI): the command in a group of its own', () => {
  /** Starts the counter under `slotlock run`, slotlock leading a process group as a shell job does. */
  async function started(owner: string): Promise<{ running: RunningCli; report: string }> {
    const { report, args } = counterRun(owner);
    const running = startCli(args, { detached: true });
    await running.waitForOutput(/counter ready/);
    expect(await holders()).toEqual([`${owner} job(1)`]);
    return { running, report };
  }

  it.each([
    ['SIGINT', 'to its process group (kill -INT -PGID)', true],
    ['SIGINT', 'to slotlock alone', false],
    ['SIGTERM', 'to its process group', true],
    ['SIGTERM', 'to slotlock alone (a supervisor)', false],
    ['SIGHUP', 'to its process group', true],
    ['SIGQUIT', 'to slotlock alone', false],
  ] as const)(
    '%s %s reaches the command once; it cleans up, its code is the exit code, the locks are released',
    async (signal, _how, toGroup) => {
      const { running, report } = await started(`S-${signal}-${toGroup ? 'group' : 'pid'}`);
      const pid = running.child.pid!;
      await signalWhileSlotlockIsStopped(pid, () => process.kill(toGroup ? -pid : pid, signal));
      const result = await running.result;
      const counted = readReport(report);
      expect(counted.counts).toEqual({ [signal]: 1 });
      expect(result.code).toBe(COUNTER_EXIT);
      expect(await holders()).toEqual([]);
      // Its own group, not slotlock's: a signal to slotlock's group does not reach it directly.
      expect(counted.pgrp).toBe(counted.pid);
    },
  );

  it('under timeout(1), which signals slotlock and then its whole group: the command gets SIGTERM once', async () => {
    const { report, args } = counterRun('S-timeout');
    const running = startCli(args, { under: ['timeout', '-s', 'TERM', '4'] });
    await running.waitForOutput(/counter ready/);
    await running.result;
    const counted = readReport(report);
    expect(counted.counts).toEqual({ SIGTERM: 1 });
    // timeout(1) sends SIGCONT after its signal, so slotlock cannot be held back here: what
    // keeps timeout's group signal from the command is the command's own process group.
    expect(counted.pgrp).toBe(counted.pid);
    expect(await holders()).toEqual([]);
  });
});

describe('slotlock run in the foreground of a terminal (a pseudo-terminal from script(1))', () => {
  /**
   * Runs `slotlock run ... counter` as the foreground job of a shell (terminal-shell.js) in
   * a new pseudo-terminal; resolves once the counter is ready. What `type` writes is typed.
   */
  function inTerminal(owner: string): {
    report: string;
    ready: Promise<{ pid: number; parent: number }>;
    output: () => string;
    type: (text: string) => void;
    exit: Promise<number | null>;
  } {
    const { report, args } = counterRun(owner);
    const words = [process.execPath, TERMINAL_SHELL, process.execPath, CLI_MAIN, ...args];
    const quoted = words.map((word) => `'${word.replace(/'/g, `'\\''`)}'`);
    // -e: exit with the shell's code, which is slotlock's.
    const script = spawn('script', ['-qec', `exec ${quoted.join(' ')}`, '/dev/null'], { stdio: 'pipe' });
    let output = '';
    script.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    const ready = new Promise<{ pid: number; parent: number }>((resolve, reject) => {
      const poll = setInterval(() => {
        if (!/counter ready/.test(output)) return;
        clearInterval(poll);
        resolve(counterPids(output));
      }, 20);
      script.once('exit', () => {
        clearInterval(poll);
        reject(new Error(`script exited before the counter was ready: ${output}`));
      });
    });
    const exit = new Promise<number | null>((resolve) => script.once('exit', (code) => resolve(code)));
    const killer = setTimeout(() => script.kill('SIGKILL'), 30_000);
    void exit.then(() => clearTimeout(killer));
    return { report, ready, output: () => output, type: (text) => script.stdin.write(text), exit };
  }

  beforeAll(() => {
    // A missing script(1) must fail these tests, not skip them.
    const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) throw new Error('these tests need script(1) from util-linux (apt-get install bsdutils)');
  });

  it('Ctrl-C reaches the command once (from the terminal; slotlock does not pass it on); it cleans up, the locks are released', async () => {
    const terminal = inTerminal('T-ctrl-c');
    const { parent: slotlock } = await terminal.ready;
    await signalWhileSlotlockIsStopped(slotlock, () => terminal.type('\x03'));
    expect(await terminal.exit).toBe(COUNTER_EXIT);
    const counted = readReport(terminal.report);
    expect(counted.counts).toEqual({ SIGINT: 1 });
    // In the terminal's foreground group, as it would be without slotlock: it can use the terminal.
    expect(counted.pgrp).toBe(counted.tpgid);
    expect(await holders()).toEqual([]);
  });

  it('SIGTERM sent to slotlock alone is passed on, once', async () => {
    const terminal = inTerminal('T-term');
    const { parent: slotlock } = await terminal.ready;
    await signalWhileSlotlockIsStopped(slotlock, () => process.kill(slotlock, 'SIGTERM'));
    expect(await terminal.exit).toBe(COUNTER_EXIT);
    expect(readReport(terminal.report).counts).toEqual({ SIGTERM: 1 });
    expect(await holders()).toEqual([]);
  });
});
