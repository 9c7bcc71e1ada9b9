/**
 * Runs TypeScript worker files as separate OS processes, for tests that need real
 * parallelism (several connections pools racing on one database, not just several
 * promises in one event loop).
 *
 * Parent side: {@link spawnWorkers} starts one child per config and resolves to the
 * children's results, in config order. Child side: wrap the worker's body in
 * {@link runWorker}, which reads the config, optionally waits at the start barrier,
 * and prints the result as the last line of stdout.
 *
 * @example
 * ```ts
 * // test/support/my-worker.ts
 * import { runWorker } from './spawn-workers';
 * if (require.main === module) {
 *   runWorker<{ n: number }, { doubled: number }>(async (config) => ({ doubled: config.n * 2 }));
 * }
 *
 * // test/integration/my.test.ts
 * afterEach(() => killWorkers());
 * const results = await spawnWorkers<{ n: number }, { doubled: number }>({
 *   file: path.join(__dirname, '../support/my-worker.ts'),
 *   configs: [{ n: 1 }, { n: 2 }],
 * });
 * // results: [{ doubled: 2 }, { doubled: 4 }]
 * ```
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

/** Environment variable that carries a child's JSON config. */
export const WORKER_CONFIG_ENV = 'SPAWN_WORKER_CONFIG';
/** Environment variable set to `'1'` when the children start behind a barrier. */
export const WORKER_BARRIER_ENV = 'SPAWN_WORKER_BARRIER';
/** Environment variable holding the child's position in `configs` (0-based). */
export const WORKER_INDEX_ENV = 'SPAWN_WORKER_INDEX';
/** Line a child prints on stdout when it reached the barrier. */
export const WORKER_READY_LINE = '@@spawn-workers:ready';
/** Line the parent writes on every child's stdin once all children are ready. */
const WORKER_GO_LINE = '@@spawn-workers:go';

/** Bytes of each child's stdout and stderr kept for results and error messages (the tail). */
const MAX_CAPTURE_CHARS = 256 * 1024;

/** Options of {@link spawnWorkers}. */
export interface SpawnWorkersOptions<Config> {
  /** The worker file (TypeScript or JavaScript); a relative path resolves from `cwd`. */
  readonly file: string;
  /** One config per child, so `configs.length` children. Each reaches its child as JSON in {@link WORKER_CONFIG_ENV}. */
  readonly configs: readonly Config[];
  /**
   * Kills every child and rejects after this many milliseconds. Default `60_000`.
   * Keep it below Jest's `testTimeout` so that the rejection, with the children's
   * stderr, is what the test reports; call {@link killWorkers} in `afterEach` as well.
   */
  readonly timeoutMs?: number;
  /**
   * When true, children that call {@link readyBarrier} (as {@link runWorker} does) wait
   * there until every child has reached it, then all go at once, so that slow
   * start-ups (ts-node, TypeORM, connecting) do not eat into the racing time.
   * Default `false`.
   */
  readonly barrier?: boolean;
  /** Extra environment variables for every child (on top of `process.env`). */
  readonly env?: NodeJS.ProcessEnv;
  /** Working directory of the children. Default `process.cwd()`. */
  readonly cwd?: string;
  /** Extra Node options put before the `-r` hooks, e.g. `['--max-old-space-size=256']`. */
  readonly nodeArgs?: readonly string[];
}

/** A child that exited non-zero, was killed, or printed no JSON result. */
export class WorkerFailedError extends Error {
  override readonly name = 'WorkerFailedError';

  constructor(
    message: string,
    /** The child's position in `configs`. */
    readonly index: number,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    /** The tail of the child's stderr. */
    readonly stderr: string,
    /** The tail of the child's stdout. */
    readonly stdout: string,
  ) {
    super(message);
  }
}

/** Children started by {@link spawnWorkers} that have not exited yet. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Kills (SIGKILL) every child that {@link spawnWorkers} started and that is still
 * running; returns how many were signalled. Safe to call at any time: put it in
 * `afterEach`, so that a test that timed out does not leave children behind.
 */
export function killWorkers(): number {
  let killed = 0;
  for (const child of liveChildren) {
    if (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) killed += 1;
  }
  return killed;
}

/**
 * Starts one child Node process per config running `file` through
 * `ts-node/register/transpile-only` (with `reflect-metadata` loaded first), and
 * resolves to each child's result: the JSON on the last non-empty line of its stdout.
 *
 * Rejects with a {@link WorkerFailedError} carrying the child's stderr as soon as one
 * child exits non-zero (or is killed, or prints no JSON); the other children are then
 * killed. On `timeoutMs` every child is killed and the promise rejects.
 *
 * @typeParam Config - what each child receives (must survive `JSON.stringify`).
 * @typeParam Result - what each child prints as its result.
 */
export function spawnWorkers<Config, Result>(options: SpawnWorkersOptions<Config>): Promise<Result[]> {
  const cwd = options.cwd ?? process.cwd();
  const file = path.resolve(cwd, options.file);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const barrier = options.barrier ?? false;
  const hooks = ['-r', require.resolve('reflect-metadata'), '-r', require.resolve('ts-node/register/transpile-only')];
  installExitHook();

  return new Promise<Result[]>((resolve, reject) => {
    const count = options.configs.length;
    const children: ChildProcess[] = [];
    const results = new Array<Result>(count);
    const ready = new Array<boolean>(count).fill(false);
    let readyCount = 0;
    let doneCount = 0;
    let settled = false;

    const finish = (error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error !== undefined) {
        for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        reject(error);
      } else {
        resolve(results);
      }
    };

    const outputs = new Array<{ stdout: string; stderr: string }>();
    const timer = setTimeout(() => {
      const tails = outputs
        .map((output, index) => `--- worker ${index} stderr ---\n${tail(output.stderr, 4000) || '(empty)'}`)
        .join('\n');
      finish(
        new Error(
          `spawnWorkers: ${path.basename(file)} did not finish within ${timeoutMs} ms; killed every worker\n${tails}`,
        ),
      );
    }, timeoutMs);

    if (count === 0) {
      finish(undefined);
      return;
    }

    options.configs.forEach((config, index) => {
      const output = { stdout: '', stderr: '' };
      outputs.push(output);
      const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...hooks, file], {
        cwd,
        env: {
          ...process.env,
          ...options.env,
          TS_NODE_TRANSPILE_ONLY: '1',
          [WORKER_CONFIG_ENV]: JSON.stringify(config),
          [WORKER_BARRIER_ENV]: barrier ? '1' : '0',
          [WORKER_INDEX_ENV]: String(index),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.push(child);
      liveChildren.add(child);
      // A child that exits first must not turn our write into an uncaught EPIPE.
      child.stdin!.on('error', () => undefined);
      if (!barrier) child.stdin!.end();

      child.stdout!.setEncoding('utf8');
      child.stderr!.setEncoding('utf8');
      child.stdout!.on('data', (chunk: string) => {
        output.stdout = tail(output.stdout + chunk, MAX_CAPTURE_CHARS);
        if (barrier && !ready[index] && hasLine(output.stdout, WORKER_READY_LINE)) {
          ready[index] = true;
          readyCount += 1;
          if (readyCount === count) {
            for (const each of children) each.stdin!.end(`${WORKER_GO_LINE}\n`);
          }
        }
      });
      child.stderr!.on('data', (chunk: string) => {
        output.stderr = tail(output.stderr + chunk, MAX_CAPTURE_CHARS);
      });

      child.on('error', (error) => {
        liveChildren.delete(child);
        finish(
          new WorkerFailedError(
            `worker ${index} could not start: ${error.message}`,
            index,
            null,
            null,
            output.stderr,
            output.stdout,
          ),
        );
      });
      // 'close' (not 'exit'): stdout and stderr are fully read by then.
      child.on('close', (code, signal) => {
        liveChildren.delete(child);
        if (settled) return;
        const failed = (reason: string): void =>
          finish(
            new WorkerFailedError(
              `worker ${index} (${path.basename(file)}) ${reason}\n--- stderr ---\n${tail(output.stderr, 8000) || '(empty)'}` +
                `\n--- stdout (tail) ---\n${tail(output.stdout, 2000) || '(empty)'}`,
              index,
              code,
              signal,
              output.stderr,
              output.stdout,
            ),
          );
        if (code !== 0 || signal !== null) {
          failed(`exited with ${signal !== null ? `signal ${signal}` : `code ${String(code)}`}`);
          return;
        }
        if (barrier && !ready[index]) {
          failed('exited 0 without reaching the barrier (call readyBarrier() or use runWorker())');
          return;
        }
        const last = lastLine(output.stdout);
        try {
          results[index] = JSON.parse(last) as Result;
        } catch {
          failed(`exited 0 but its last stdout line is not JSON: ${JSON.stringify(last.slice(0, 500))}`);
          return;
        }
        doneCount += 1;
        if (doneCount === count) finish(undefined);
      });
    });
  });
}

// --- child side ----------------------------------------------------------------------

/** The config the parent passed to this child (throws when not started by {@link spawnWorkers}). */
export function workerConfig<Config>(): Config {
  const raw = process.env[WORKER_CONFIG_ENV];
  if (raw === undefined) throw new Error(`${WORKER_CONFIG_ENV} is not set: start this file with spawnWorkers()`);
  return JSON.parse(raw) as Config;
}

/** This child's position in the parent's `configs`. */
export function workerIndex(): number {
  return Number(process.env[WORKER_INDEX_ENV] ?? 0);
}

/**
 * When the parent asked for a barrier, tells it this child is ready and waits until
 * every child is; otherwise returns at once. Call it after the slow set-up (connecting)
 * and right before the timed part.
 */
export function readyBarrier(): Promise<void> {
  if (process.env[WORKER_BARRIER_ENV] !== '1') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let input = '';
    const onData = (chunk: string): void => {
      input += chunk;
      if (hasLine(input, WORKER_GO_LINE)) {
        cleanup();
        resolve();
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (hasLine(input, WORKER_GO_LINE)) resolve();
      else reject(new Error('stdin closed before the parent released the barrier'));
    };
    const cleanup = (): void => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.pause();
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdout.write(`${WORKER_READY_LINE}\n`);
  });
}

/**
 * The body of a worker file: reads the config, runs `main`, prints its result as one
 * JSON line on stdout and exits 0; if `main` throws, prints the stack on stderr and
 * exits 1. `main` should call {@link readyBarrier} once set up (it is a no-op without
 * `barrier: true`). Nothing may be written to stdout after `main` resolves.
 */
export function runWorker<Config, Result>(main: (config: Config, index: number) => Promise<Result>): void {
  let config: Config;
  try {
    config = workerConfig<Config>();
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, () =>
      process.exit(1),
    );
    return;
  }
  main(config, workerIndex()).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
    },
    (error: unknown) => {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      process.stderr.write(`worker ${workerIndex()} failed: ${text}\n`, () => process.exit(1));
    },
  );
}

// --- helpers -------------------------------------------------------------------------

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort: a parent that dies (or a Jest worker torn down) takes its children along.
  process.once('exit', () => {
    killWorkers();
  });
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : text.slice(text.length - max);
}

function hasLine(text: string, line: string): boolean {
  return text.split(/\r?\n/).includes(line);
}

function lastLine(text: string): string {
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  return lines[lines.length - 1] ?? '';
}
