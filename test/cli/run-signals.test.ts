import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { allRows, dataSourceOptions, recreateDatabase, testDatabaseName } from '../support/database';
import { CLI_MAIN, cliUrl, killCli, runCli, startCli, type RunningCli } from '../support/cli';

/**
 * `slotlock run` and signals: the command gets each signal once, as it would without
 * slotlock, finishes its cleanup, and the locks are released after. With a controlling
 * terminal (foreground or background job) the command shares slotlock's process group and
 * slotlock passes nothing on; without one it has a group of its own and slotlock passes
 * every signal on. The command is signal-counter.js.
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

/** What the counter reported: the signals it got, its process group, its terminal's foreground group, /dev/tty. */
interface CounterReport {
  readonly counts: Partial<Record<NodeJS.Signals, number>>;
  readonly pid: number;
  readonly pgrp: number;
  readonly tpgid: number;
  readonly tty: boolean;
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
    // setsid: no controlling terminal, even when the tests run in one.
    const running = startCli(args, { under: ['setsid', '-w', 'timeout', '-s', 'TERM', '4'] });
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

/** The process group of `pid`, from /proc. */
function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/** A program running in a new pseudo-terminal from script(1): its output, what is typed to it, its exit. */
interface Terminal {
  output(): string;
  type(text: string): void;
  /** Resolves once the output matches `pattern`; rejects if script exits first. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  readonly exit: Promise<number | null>;
}

/** Runs `command` (a shell command line) as the session leader of a new pseudo-terminal. */
function inPseudoTerminal(command: string, env: NodeJS.ProcessEnv = process.env): Terminal {
  // -e: exit with the program's code.
  const script = spawn('script', ['-qec', command, '/dev/null'], { stdio: 'pipe', env });
  let output = '';
  script.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  const exit = new Promise<number | null>((resolve) => script.once('exit', (code) => resolve(code)));
  const killer = setTimeout(() => script.kill('SIGKILL'), 30_000);
  void exit.then(() => clearTimeout(killer));
  return {
    output: () => output,
    type: (text) => script.stdin.write(text),
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const poll = setInterval(() => {
          const match = pattern.exec(output);
          if (match === null) return;
          clearInterval(poll);
          resolve(match);
        }, 20);
        void exit.then(() => {
          clearInterval(poll);
          const match = pattern.exec(output);
          if (match !== null) resolve(match);
          else reject(new Error(`script exited before ${pattern} showed: ${output}`));
        });
      }),
    exit,
  };
}

function shellQuote(words: readonly string[]): string {
  return words.map((word) => `'${word.replace(/'/g, `'\\''`)}'`).join(' ');
}

describe('slotlock run with a terminal (pseudo-terminals from script(1)): the command in its group, nothing passed on', () => {
  beforeAll(() => {
    // A missing script(1) must fail these tests, not skip them.
    const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) throw new Error('these tests need script(1) from util-linux (apt-get install bsdutils)');
  });

  describe('in the foreground', () => {
    /**
     * Runs `slotlock run ... counter` as the foreground job of a shell (terminal-shell.js) in
     * a new pseudo-terminal; resolves once the counter is ready.
     */
    async function inForeground(
      owner: string,
    ): Promise<{ terminal: Terminal; report: string; slotlock: number; counter: number }> {
      const { report, args } = counterRun(owner);
      const terminal = inPseudoTerminal(
        `exec ${shellQuote([process.execPath, TERMINAL_SHELL, process.execPath, CLI_MAIN, ...args])}`,
      );
      const { pid, parent } = counterPids((await terminal.waitFor(/counter ready: pid \d+, parent \d+/))[0]);
      return { terminal, report, slotlock: parent, counter: pid };
    }

    it('Ctrl-C reaches the command once (from the terminal); it cleans up, the locks are released', async () => {
      const { terminal, report, slotlock } = await inForeground('T-ctrl-c');
      await signalWhileSlotlockIsStopped(slotlock, () => terminal.type('\x03'));
      expect(await terminal.exit).toBe(COUNTER_EXIT);
      const counted = readReport(report);
      expect(counted.counts).toEqual({ SIGINT: 1 });
      // In the terminal's foreground group, as it would be without slotlock: it can use the terminal.
      expect(counted.pgrp).toBe(counted.tpgid);
      expect(counted.tty).toBe(true);
      expect(await holders()).toEqual([]);
    });

    it('SIGTERM to the whole foreground group (kill -TERM -PGID, kill 0) reaches the command once', async () => {
      const { terminal, report, slotlock } = await inForeground('T-group-term');
      const group = processGroupOf(slotlock);
      await signalWhileSlotlockIsStopped(slotlock, () => process.kill(-group, 'SIGTERM'));
      expect(await terminal.exit).toBe(COUNTER_EXIT);
      expect(readReport(report).counts).toEqual({ SIGTERM: 1 });
      expect(await holders()).toEqual([]);
    });

    it("a signal sent to slotlock's pid alone is not passed on: slotlock waits for the command, then releases", async () => {
      const { terminal, report, slotlock, counter } = await inForeground('T-pid-term');
      await signalWhileSlotlockIsStopped(slotlock, () => process.kill(slotlock, 'SIGTERM'));
      await new Promise((resolve) => setTimeout(resolve, DIRECT_DELIVERY_MS));
      // The command runs on, untouched, and slotlock still holds its lock.
      expect(terminal.output()).not.toMatch(/counter got/);
      expect(existsSync(report)).toBe(false);
      expect(await holders()).toEqual(['T-pid-term job(1)']);
      // Stopped as one stops it without slotlock: signal the command itself.
      process.kill(counter, 'SIGTERM');
      expect(await terminal.exit).toBe(COUNTER_EXIT);
      expect(readReport(report).counts).toEqual({ SIGTERM: 1 });
      expect(await holders()).toEqual([]);
    });
  });

  describe('as a background job of an interactive shell (cmd &)', () => {
    /** bash with job control in a new pseudo-terminal, running `slotlock run ... counter &`; resolves once the counter is ready. */
    async function inBackground(owner: string): Promise<{ shell: Terminal; report: string; slotlock: number }> {
      const { report, args } = counterRun(owner);
      const shell = inPseudoTerminal('exec bash --norc --noprofile -i', { ...process.env, PS1: '$ ' });
      shell.type(`${shellQuote([process.execPath, CLI_MAIN, ...args])} &\n`);
      const { parent } = counterPids((await shell.waitFor(/counter ready: pid \d+, parent \d+/))[0]);
      return { shell, report, slotlock: parent };
    }

    /** Waits for the job, and resolves to its exit status as the shell saw it; the shell then exits. */
    async function jobExit(shell: Terminal): Promise<number> {
      shell.type('wait %1; echo "job-exit:$?"\n');
      const status = Number((await shell.waitFor(/job-exit:(\d+)/))[1]);
      shell.type('exit\n');
      await shell.exit;
      return status;
    }

    it('kill %1 reaches the command once; it keeps the terminal (/dev/tty), cleans up, the locks are released', async () => {
      const { shell, report, slotlock } = await inBackground('B-kill-job');
      shell.type('kill %1\n');
      expect(await jobExit(shell)).toBe(COUNTER_EXIT);
      const counted = readReport(report);
      expect(counted.counts).toEqual({ SIGTERM: 1 });
      // In slotlock's group (the job's), not the terminal's foreground group, and still in its session.
      expect(counted.pgrp).toBe(slotlock);
      expect(counted.pgrp).not.toBe(counted.tpgid);
      expect(counted.tty).toBe(true);
      expect(await holders()).toEqual([]);
    });

    it("SIGTERM to the job's process group reaches the command once, even with slotlock held back", async () => {
      const { shell, report, slotlock } = await inBackground('B-group-term');
      await signalWhileSlotlockIsStopped(slotlock, () => process.kill(-slotlock, 'SIGTERM'));
      expect(await jobExit(shell)).toBe(COUNTER_EXIT);
      expect(readReport(report).counts).toEqual({ SIGTERM: 1 });
      expect(await holders()).toEqual([]);
    });
  });
});
