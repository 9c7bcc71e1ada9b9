/**
 * Runs the BUILT `slotlock` command (`node dist/cli/main.js`) as a child process, for the
 * tests in test/cli. Build first: `npm run build` (`npm test` does it in pretest).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MYSQL_SERVER_URL } from './database';

/** The built entry point. */
export const CLI_MAIN = path.join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

/** What a finished `slotlock` run left behind. */
export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly elapsedMs: number;
}

/** Options of {@link runCli} and {@link startCli}. */
export interface CliOptions {
  /** Extra environment; `SLOTLOCK_DATABASE_URL` is removed from the inherited one unless given here. */
  readonly env?: NodeJS.ProcessEnv;
  /** SIGKILLs the command after this long (default 60 s) so a hung test fails instead of hanging. */
  readonly timeoutMs?: number;
  /** Options for node itself, before the script (e.g. `['--require', preload]`). */
  readonly nodeArgs?: readonly string[];
  /** Starts slotlock as the leader of a process group (and session) of its own, as a shell job is. */
  readonly detached?: boolean;
  /** A command to run slotlock under, e.g. `['timeout', '5']`: it is given `node dist/cli/main.js ...args`. */
  readonly under?: readonly string[];
  /** The working directory (default: the test's). */
  readonly cwd?: string;
}

/** The preload that makes packages look uninstalled; see hide-packages.js. */
export const HIDE_PACKAGES_PRELOAD = path.join(__dirname, 'hide-packages.js');

/** A `slotlock` process still running. */
export interface RunningCli {
  readonly child: ChildProcess;
  /** Settles when the process exits and its output is read. */
  readonly result: Promise<CliResult>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout or stderr matches `pattern`; rejects on exit or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();

/** The URL of a test database on the test server. */
export function cliUrl(database: string): string {
  return `${MYSQL_SERVER_URL}/${database}`;
}

/** Throws a clear error when dist/ has not been built. */
export function assertBuilt(): void {
  if (!fs.existsSync(CLI_MAIN)) {
    throw new Error(`${CLI_MAIN} is missing: run \`npm run build\` before these tests (npm test does)`);
  }
}

/** Starts `node dist/cli/main.js ...args`. */
export function startCli(args: readonly string[], options: CliOptions = {}): RunningCli {
  assertBuilt();
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SLOTLOCK_DATABASE_URL;
  delete env.SLOTLOCK_DEBUG;
  const started = Date.now();
  const command = [...(options.under ?? []), process.execPath, ...(options.nodeArgs ?? []), CLI_MAIN, ...args];
  const child = spawn(command[0]!, command.slice(1), {
    env: { ...env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached === true,
    cwd: options.cwd,
  });
  live.add(child);
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    for (const watcher of watchers) watcher();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const watcher of watchers) watcher();
  });
  const timer = setTimeout(() => killRunning(child), options.timeoutMs ?? 60_000);
  const result = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      for (const watcher of watchers) watcher();
      resolve({ code, signal, stdout, stderr, elapsedMs: Date.now() - started });
    });
  });
  return {
    child,
    result,
    stdout: () => stdout,
    stderr: () => stderr,
    waitForOutput(pattern, timeoutMs = 20_000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(stdout) || pattern.test(stderr)) {
            done();
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            done();
            reject(new Error(`slotlock exited before printing ${pattern}\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        };
        const giveUp = setTimeout(() => {
          done();
          reject(new Error(`no ${pattern} within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(giveUp);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
  };
}

/** Runs `node dist/cli/main.js ...args` to the end. */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return startCli(args, options).result;
}

/** SIGKILLs every `slotlock` a test left running (with its group, when it leads one); call it in afterEach. */
export function killCli(): void {
  for (const child of live) killRunning(child);
}

function killRunning(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Not a group leader (spawned without `detached`), or its group is gone.
  }
}

/** The non-empty lines of a text. */
export function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}
