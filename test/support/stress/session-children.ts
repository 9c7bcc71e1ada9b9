/**
 * Parent side of the session stress test (test/stress/sessions.test.ts): starts OS
 * processes that hold, wait for and hammer locks (./session-worker.ts), or run the
 * `slotlock` command from source, and talks to them while they run. A child prints
 * events as JSON lines on stdout (`{"event":"held",...}`) and reads commands as JSON
 * lines on stdin, so that the test can kill one at a chosen moment, measure from there,
 * and ask another what it saw.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { WaitOptions } from '../../../src';
import { REPO_ROOT } from './servers';
import type { ErrorSample } from './worker-kit';

export const SESSION_WORKER_FILE = path.join(__dirname, 'session-worker.ts');
/** The `slotlock` command's source entry point, run through ts-node (no build needed). */
export const CLI_SOURCE_MAIN = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
/** Environment variable carrying a worker's JSON config. */
export const SESSION_CONFIG_ENV = 'SLOTLOCK_SESSION_WORKER_CONFIG';

/** `Date.now()` with sub-millisecond resolution: comparable between processes of one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The median of `values` (0 for none). */
export function medianOf(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** What each kind of worker is told when it starts. */
export type SessionWorkerConfig =
  | {
      /** Opens a session of `ttlMs`, takes `keys` under it, prints `held`, then obeys commands. */
      readonly role: 'holder';
      readonly url: string;
      readonly ttlMs: number;
      readonly keys: readonly string[];
    }
  | {
      /** Takes and releases locks on command, with `waitMs`; its service polls with `wait`. */
      readonly role: 'waiter';
      readonly url: string;
      readonly wait?: Partial<WaitOptions>;
    }
  | ({
      /** Load around a live session (see LoadConfig); starts on `go`, prints `done` and exits. */
      readonly role: 'load';
      readonly url: string;
    } & LoadConfig)
  | ({
      /** Aborts waits at random moments (see AbortConfig); starts on `go`, prints `done` and exits. */
      readonly role: 'aborter';
      readonly url: string;
    } & AbortConfig)
  | {
      /** Takes `key`, holds it 0-15 ms, releases, pauses 0-15 ms, until `stop`. */
      readonly role: 'blocker';
      readonly url: string;
      readonly key: string;
    };

export interface LoadConfig {
  /** The live session's key: every try to take it must fail. */
  readonly heldKey: string;
  /** Prefix of this process's own key pool (30 keys) and owners. */
  readonly prefix: string;
  readonly durationMs: number;
  /** Async callers in the process, cycling acquire → hold → release on 1-3 pool keys, sometimes under sessions. */
  readonly callers: number;
  /** Also run reapExpiredSessions() in a loop. */
  readonly reaper: boolean;
  /** Plant a dead session (expired row, locks on pool keys) this often, so reaping has work. */
  readonly plantDeadEveryMs?: number;
}

export interface AbortConfig {
  /** A key the blocker keeps taking and releasing. */
  readonly contendedKey: string;
  readonly iterations: number;
  readonly waitMs: number;
  /** Owners are `${ownerPrefix}${i}`. */
  readonly ownerPrefix: string;
}

/** A tally of the load around a live session. */
export interface LoadResult {
  readonly cycles: number;
  readonly sessionCycles: number;
  /** The load's own short sessions that were lost (a heartbeat late on a busy machine): counted, not errors. */
  readonly sessionsLost: number;
  readonly conflicts: number;
  /** Tries to take the live session's key, and how many succeeded (must be 0). */
  readonly heldKeyTries: number;
  readonly heldKeyWins: number;
  readonly deadPlanted: number;
  readonly reaped: { readonly sessions: number; readonly locks: number; readonly calls: number };
  readonly errors: ErrorSample[];
  readonly unhandled: ErrorSample[];
}

/** How aborted waits ended, by how the abort was timed. */
export interface AbortResult {
  readonly modes: Record<
    string,
    {
      readonly runs: number;
      readonly acquired: number;
      readonly aborted: number;
      readonly timedOut: number;
      /** Rows of the call's owner found right after it rejected (must be 0). */
      readonly leftovers: number;
      /** Milliseconds from the abort to the rejection: median and max. */
      readonly rejectMedianMs: number;
      readonly rejectMaxMs: number;
    }
  >;
  readonly errors: ErrorSample[];
  readonly unhandled: ErrorSample[];
}

/** One line a child printed. */
export interface ChildEvent {
  readonly event: string;
  readonly at?: number;
  readonly [field: string]: unknown;
}

/** A running child and what it printed so far. */
export interface SessionChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly pid: number;
  /**
   * Resolves with the next event not yet taken among `events` (one name or several);
   * rejects if the child exits or reports an error first, or after `timeoutMs`.
   */
  next(events: string | readonly string[], timeoutMs?: number): Promise<ChildEvent>;
  /** Resolves with the next line of text matching `pattern` (for the `slotlock` command). */
  nextLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Writes one command line on the child's stdin. */
  send(command: { readonly cmd: string; readonly [field: string]: unknown }): void;
  kill(signal: NodeJS.Signals): void;
  /** Settles when the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

const live = new Set<ChildProcess>();

/** SIGKILLs every child still running (call it in afterEach and afterAll). */
export function killSessionChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

process.once('exit', killSessionChildren);

const HOOKS = ['-r', require.resolve('reflect-metadata'), '-r', require.resolve('ts-node/register/transpile-only')];

/** Starts ./session-worker.ts with `config`. */
export function startWorker(name: string, config: SessionWorkerConfig): SessionChild {
  return startChild(name, [...HOOKS, SESSION_WORKER_FILE], { [SESSION_CONFIG_ENV]: JSON.stringify(config) });
}

/** Starts `slotlock ...args` from source (src/cli/main.ts through ts-node). */
export function startSlotlock(name: string, args: readonly string[]): SessionChild {
  return startChild(name, [...HOOKS, CLI_SOURCE_MAIN, ...args], {});
}

function startChild(name: string, args: readonly string[], env: NodeJS.ProcessEnv): SessionChild {
  const child = spawn(process.execPath, [...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', SLOTLOCK_DATABASE_URL: undefined, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${args.join(' ')}`);
  live.add(child);
  child.stdin!.on('error', () => undefined);

  const events: ChildEvent[] = [];
  const lines: string[] = [];
  let stdoutBuffer = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  const notify = (): void => {
    for (const watcher of [...watchers]) watcher();
  };

  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdoutBuffer += chunk;
    let newline = stdoutBuffer.indexOf('\n');
    while (newline >= 0) {
      const line = stdoutBuffer.slice(0, newline);
      stdoutBuffer = stdoutBuffer.slice(newline + 1);
      if (line.startsWith('{"event":')) events.push(JSON.parse(line) as ChildEvent);
      else lines.push(line);
      newline = stdoutBuffer.indexOf('\n');
    }
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-16_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      notify();
      resolve({ code, signal });
    });
  });

  /** Waits until `take()` finds something; rejects when the child is gone or the time is up. */
  const waitFor = <T>(what: string, take: () => T | undefined, timeoutMs: number): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const check = (): void => {
        let found: T | undefined;
        try {
          found = take();
        } catch (error) {
          done();
          reject(error as Error);
          return;
        }
        if (found !== undefined) {
          done();
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before ${what}\n${tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${name}: no ${what} within ${timeoutMs} ms\n${tail()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        watchers.delete(check);
      };
      watchers.add(check);
      check();
    });
  const tail = (): string =>
    `--- stderr ---\n${stderr.slice(-4000) || '(empty)'}\n--- stdout ---\n${lines.slice(-20).join('\n')}`;

  return {
    name,
    process: child,
    pid: child.pid,
    next: (wanted, timeoutMs = 60_000) =>
      waitFor(
        `event ${JSON.stringify(wanted)}`,
        () => {
          const names: readonly string[] = typeof wanted === 'string' ? [wanted] : wanted;
          const index = events.findIndex((each) => names.includes(each.event));
          if (index < 0) {
            const failure = events.find((each) => each.event === 'error');
            if (failure !== undefined) throw new Error(`${name} failed: ${JSON.stringify(failure)}\n${tail()}`);
            return undefined;
          }
          return events.splice(index, 1)[0];
        },
        timeoutMs,
      ),
    nextLine: (pattern, timeoutMs = 60_000) =>
      waitFor(
        `a line matching ${pattern}`,
        () => {
          const index = lines.findIndex((line) => pattern.test(line));
          return index < 0 ? undefined : (pattern.exec(lines.splice(index, 1)[0]!) ?? undefined);
        },
        timeoutMs,
      ),
    send(command) {
      child.stdin!.write(`${JSON.stringify(command)}\n`);
    },
    kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    exited,
    stderr: () => stderr,
  };
}
