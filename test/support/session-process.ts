/**
 * A long-lived child Node process for the session race tests (issue 11, item 3): unlike
 * {@link spawnWorkers}, whose children run to completion, the parent talks to it while
 * it lives (one JSON command a line on its stdin, one JSON message a line on its
 * stdout), and may SIGKILL, SIGSTOP or SIGCONT it at any moment.
 *
 * Child side: {@link childConfig} reads the config, {@link emit} writes a message,
 * {@link serveCommands} answers commands.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

/** Environment variable carrying the child's JSON config. */
const CONFIG_ENV = 'SESSION_PROCESS_CONFIG';

/** What a child reports of an error. */
export interface ErrorInfo {
  readonly name: string;
  readonly message: string;
  /** A SlotLockException's failure. */
  readonly failure?: string;
}

/** One line a child printed: a reply (`id`) or an event (`event`), stamped with its `Date.now()`. */
export interface ChildMessage {
  readonly id?: number;
  readonly event?: string;
  readonly ok?: boolean;
  readonly value?: unknown;
  readonly error?: ErrorInfo;
  readonly at: number;
  readonly [field: string]: unknown;
}

/** How a child process ended. */
export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** `Date.now()` when it was seen to exit. */
  readonly at: number;
}

const live = new Set<SessionProcess>();

const ROOT = path.join(__dirname, '../..');

/**
 * What the children load the package from: the build (`dist`, as `npm test` makes it
 * first) when it is newer than every source file, else the sources through ts-node. A
 * child loads the build four times faster, which on a busy machine is most of a race
 * test's time; a stale build would test old code, so it is never used then.
 */
export function slotLockPackagePath(): string {
  const built = path.join(ROOT, 'dist/index.js');
  const sources = path.join(ROOT, 'src');
  if (!existsSync(built)) return sources;
  const builtAt = statSync(built).mtimeMs;
  const newest = (dir: string): number =>
    Math.max(
      statSync(dir).mtimeMs,
      ...readdirSync(dir, { withFileTypes: true }).map((entry) =>
        entry.isDirectory() ? newest(path.join(dir, entry.name)) : statSync(path.join(dir, entry.name)).mtimeMs,
      ),
    );
  return newest(sources) < builtAt ? path.join(ROOT, 'dist') : sources;
}

/** The package as a child loads it (see {@link slotLockPackagePath}). */
export function loadSlotLock(packagePath: string): typeof import('../../src') {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(packagePath) as typeof import('../../src');
}

/** SIGKILLs every child still running (for `afterEach`); resumes stopped ones first. */
export function killSessionProcesses(): void {
  for (const child of live) child.kill();
}

/** A child process started with ts-node (as the spawn-workers children are). */
export class SessionProcess {
  readonly messages: ChildMessage[] = [];
  readonly exited: Promise<ChildExit>;
  readonly #child: ChildProcess;
  readonly #file: string;
  #stderr = '';
  #exit: ChildExit | undefined;
  #nextId = 1;
  readonly #waiting = new Set<{
    match: (message: ChildMessage) => boolean;
    resolve: (message: ChildMessage) => void;
  }>();

  /**
   * Starts `file` with `config`. With `stdin: false` the child's stdin is closed from the
   * start (nothing of the parent's keeps it alive; it cannot take commands).
   */
  constructor(file: string, config: unknown, options: { stdin?: boolean } = {}) {
    this.#file = file;
    const hooks = ['-r', require.resolve('reflect-metadata'), '-r', require.resolve('ts-node/register/transpile-only')];
    this.#child = spawn(process.execPath, [...hooks, file], {
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', [CONFIG_ENV]: JSON.stringify(config) },
      stdio: [options.stdin === false ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    live.add(this);
    this.#child.stdin?.on('error', () => undefined);
    this.#child.stderr!.setEncoding('utf8');
    this.#child.stderr!.on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-16_000);
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      let message: ChildMessage;
      try {
        message = JSON.parse(line) as ChildMessage;
      } catch {
        return; // not ours (a library printing)
      }
      this.messages.push(message);
      for (const waiter of [...this.#waiting]) {
        if (waiter.match(message)) {
          this.#waiting.delete(waiter);
          waiter.resolve(message);
        }
      }
    });
    this.exited = new Promise<ChildExit>((resolve) => {
      this.#child.on('close', (code, signal) => {
        live.delete(this);
        this.#exit = { code, signal, at: Date.now() };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.#child.pid!;
  }

  /** The tail of the child's stderr. */
  get stderr(): string {
    return this.#stderr;
  }

  /** The first message, already received or to come, that `match` accepts; rejects after `timeoutMs` or when the child exits first. */
  next(match: (message: ChildMessage) => boolean, timeoutMs = 30_000): Promise<ChildMessage> {
    const seen = this.messages.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<ChildMessage>((resolve, reject) => {
      const waiter = {
        match,
        resolve: (message: ChildMessage) => {
          clearTimeout(timer);
          resolve(message);
        },
      };
      const fail = (why: string): void => {
        clearTimeout(timer);
        if (!this.#waiting.delete(waiter)) return;
        reject(new Error(`${this.#describe()}: ${why}\n--- stderr ---\n${this.#stderr || '(empty)'}`));
      };
      const timer = setTimeout(() => fail(`no awaited message within ${timeoutMs} ms`), timeoutMs);
      this.#waiting.add(waiter);
      void this.exited.then((exit) => fail(`exited (${exit.signal ?? `code ${String(exit.code)}`}) first`));
    });
  }

  /** The event named `name`. */
  event(name: string, timeoutMs?: number): Promise<ChildMessage> {
    return this.next((message) => message.event === name, timeoutMs);
  }

  /** Writes a command line without waiting for its reply; returns its id (see {@link reply}). */
  send(op: string, args: Record<string, unknown> = {}): number {
    const id = this.#nextId++;
    this.#child.stdin!.write(`${JSON.stringify({ ...args, id, op })}\n`);
    return id;
  }

  /** The reply to command `id`. */
  reply(id: number, timeoutMs?: number): Promise<ChildMessage> {
    return this.next((message) => message.id === id, timeoutMs);
  }

  /** Sends a command and resolves to its reply. */
  request(op: string, args: Record<string, unknown> = {}, timeoutMs?: number): Promise<ChildMessage> {
    return this.reply(this.send(op, args), timeoutMs);
  }

  /** Sends a signal (SIGKILL by default); a stopped child is resumed first so that it can die. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.#exit !== undefined) return;
    this.#child.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') this.#child.kill('SIGCONT');
  }

  #describe(): string {
    return `session child ${this.#file.split('/').pop()} (pid ${String(this.#child.pid)})`;
  }
}

// --- child side ----------------------------------------------------------------------

/** The config the parent gave this child. */
export function childConfig<Config>(): Config {
  const raw = process.env[CONFIG_ENV];
  if (raw === undefined) throw new Error(`${CONFIG_ENV} is not set: start this file with new SessionProcess()`);
  return JSON.parse(raw) as Config;
}

/** Prints one message line for the parent, stamped with `Date.now()`. */
export function emit(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ ...message, at: Date.now() })}\n`);
}

/** What a child reports of an error. */
export function describeError(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const failure = (error as { failure?: unknown }).failure;
    return { name: error.name, message: error.message, ...(typeof failure === 'string' ? { failure } : {}) };
  }
  return { name: typeof error, message: String(error) };
}

/**
 * Answers the parent's commands, one JSON object a line on stdin (`{ id, op, ...args }`),
 * each with `{ id, ok, value }` or `{ id, ok: false, error }`; commands run concurrently.
 * Exits when stdin closes (the parent is gone).
 */
export function serveCommands(handlers: Record<string, (args: Record<string, unknown>) => Promise<unknown>>): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    const command = JSON.parse(line) as { id: number; op: string } & Record<string, unknown>;
    const handler = handlers[command.op];
    const running = handler === undefined ? Promise.reject(new Error(`unknown op ${command.op}`)) : handler(command);
    running.then(
      (value) => emit({ id: command.id, ok: true, value: value ?? null }),
      (error: unknown) => emit({ id: command.id, ok: false, error: describeError(error) }),
    );
  });
  process.stdin.on('end', () => process.exit(0));
}
