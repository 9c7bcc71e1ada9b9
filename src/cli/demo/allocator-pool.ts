import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CliError } from '../cli-error';
import { ALLOCATOR_CONFIG_ENV, type AllocatorConfig, type AllocatorEvent, type DemoCommand } from './protocol';

/** Longest a round (or the start) may take before the demo gives up. */
const STEP_TIMEOUT_MS = 60_000;

/**
 * The demo's allocator processes: started once, then driven round by round over IPC.
 * A child that fails or dies fails the step in progress.
 */
export class AllocatorPool {
  readonly #children: ChildProcess[] = [];
  #onEvent: (event: AllocatorEvent) => void = () => undefined;
  #onFailure: (error: Error) => void = (error) => {
    this.#failure ??= error;
  };
  /** A failure that came between steps, for the next step to report. */
  #failure: Error | undefined;
  #stopping = false;

  /** Forks one allocator per config and resolves once every one is connected to the database. */
  async start(configs: readonly AllocatorConfig[]): Promise<number[]> {
    const file = path.join(__dirname, `allocator${path.extname(__filename)}`);
    // Under ts-node (development) the worker is TypeScript too.
    const execArgv = file.endsWith('.ts') ? ['-r', require.resolve('ts-node/register/transpile-only')] : [];
    const ready = new Set<number>();
    const started = this.#step('start', (event, done) => {
      if (event.type === 'ready') ready.add(event.allocator);
      if (ready.size === configs.length) done();
    });
    for (const config of configs) {
      const child = fork(file, [], {
        execArgv,
        env: { ...process.env, [ALLOCATOR_CONFIG_ENV]: JSON.stringify(config) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      this.#children.push(child);
      child.on('message', (event: AllocatorEvent) => this.#onEvent(event));
      child.on('error', (error) => this.#onFailure(new CliError(`allocator ${config.allocator}: ${error.message}`)));
      child.on('exit', (code, signal) => {
        if (this.#stopping && code === 0) return;
        this.#onFailure(
          new CliError(`allocator ${config.allocator} exited with ${signal ?? `code ${String(code)}`} unexpectedly`),
        );
      });
    }
    await started;
    return this.#children.map((child) => child.pid ?? 0);
  }

  /** Runs one round in every allocator at once; `onEvent` sees each event as it comes. */
  async round(round: number, useSlotLocks: boolean, onEvent: (event: AllocatorEvent) => void): Promise<void> {
    const done = new Set<number>();
    const finished = this.#step(`round ${round}`, (event, resolve) => {
      if (event.type === 'round-done') {
        done.add(event.allocator);
        if (done.size === this.#children.length) resolve();
      } else {
        onEvent(event);
      }
    });
    this.#sendAll({ type: 'round', round, useSlotLocks });
    await finished;
  }

  /** Asks every allocator to exit, and waits (briefly) until they have. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const exits = this.#children
      .filter((child) => child.exitCode === null && child.signalCode === null)
      .map((child) => new Promise<void>((resolve) => child.once('exit', () => resolve())));
    this.#sendAll({ type: 'exit' });
    const timer = setTimeout(() => this.kill(), 5_000);
    await Promise.all(exits);
    clearTimeout(timer);
  }

  /** Kills whatever is still running (on failure). */
  kill(): void {
    this.#stopping = true;
    for (const child of this.#children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  #sendAll(command: DemoCommand): void {
    for (const child of this.#children) if (child.connected) child.send(command);
  }

  /** A promise settled by `handle` (via `done`), a failure of any child, or the timeout. */
  #step(name: string, handle: (event: AllocatorEvent, done: () => void) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new CliError(`demo ${name}: no answer from the allocators within ${STEP_TIMEOUT_MS / 1000} s`)),
        STEP_TIMEOUT_MS,
      );
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.#onEvent = () => undefined;
        this.#onFailure = (later) => {
          this.#failure ??= later;
        };
        if (error === undefined) resolve();
        else reject(error);
      };
      this.#onFailure = finish;
      this.#onEvent = (event) => {
        if (event.type === 'failed') finish(new CliError(`allocator ${event.allocator} failed: ${event.message}`));
        else handle(event, () => finish());
      };
      if (this.#failure !== undefined) finish(this.#failure);
    });
  }
}
