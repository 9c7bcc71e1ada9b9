import type { ChildProcess } from 'node:child_process';
import { isTerminalForeground } from './terminal-foreground';

/** The signals `slotlock run` catches: it must outlive them to release its locks. */
export const CAUGHT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/** What a terminal sends to its whole foreground process group: Ctrl-C, Ctrl-\, a hangup. */
const TERMINAL_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGINT', 'SIGQUIT', 'SIGHUP']);

/**
 * Where the command runs, which decides which signals reach it without slotlock. Node
 * does not tell who sent a signal, so this is decided once, from where slotlock runs:
 * - In the foreground of a terminal, the command stays in slotlock's process group, so
 *   that it can use the terminal (read it, be stopped with Ctrl-Z, get window resizes).
 *   The terminal's SIGINT, SIGQUIT and SIGHUP reach the command directly: slotlock does
 *   not pass them on (the command would get Ctrl-C twice, and many tools take a second
 *   Ctrl-C as "exit now, skip the cleanup"). SIGTERM is passed on: it is what one sends
 *   to slotlock alone. (So there a SIGINT, SIGQUIT or SIGHUP sent to slotlock's pid alone
 *   does not reach the command: send SIGTERM, or signal the whole group.)
 * - Anywhere else (a service, a script, CI, a background job) the command gets a process
 *   group and session of its own, so no signal meant for slotlock's group reaches it
 *   directly, and slotlock passes every signal it catches on to the command's group,
 *   once. A SIGKILL cannot be passed on: there the command outlives it.
 * On Windows there are no process groups to speak of: every signal is passed on.
 */
export interface CommandPlacement {
  /** spawn's `detached`: the command leads a new session and process group. */
  readonly ownGroup: boolean;
  /** Signals the command gets straight from the terminal: never passed on. */
  readonly sentByTerminal: ReadonlySet<NodeJS.Signals>;
}

/** The placement for this process; see {@link CommandPlacement}. */
export function placeCommand(inTerminalForeground: boolean = isTerminalForeground()): CommandPlacement {
  if (process.platform === 'win32') return { ownGroup: false, sentByTerminal: new Set() };
  return inTerminalForeground
    ? { ownGroup: false, sentByTerminal: TERMINAL_SIGNALS }
    : { ownGroup: true, sentByTerminal: new Set() };
}

/**
 * While installed, {@link CAUGHT_SIGNALS} do not kill slotlock (it must release its locks
 * first). Before the command starts they abort the wait for the locks ({@link abortSignal});
 * while it runs they are passed on to it as its {@link CommandPlacement} says, and slotlock
 * exits when it does.
 */
export class SignalRelay {
  readonly #controller = new AbortController();
  readonly #listeners = new Map<NodeJS.Signals, () => void>();
  #command: ChildProcess | undefined;
  /** The first signal caught while no command ran. */
  received: NodeJS.Signals | undefined;

  constructor(readonly placement: CommandPlacement) {
    for (const signal of CAUGHT_SIGNALS) {
      const listener = (): void => this.#onSignal(signal);
      this.#listeners.set(signal, listener);
      process.on(signal, listener);
    }
  }

  /** Aborts on the first signal caught while no command runs. */
  get abortSignal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Passes signals on to `command` from now on; `undefined` once it has exited. */
  forwardTo(command: ChildProcess | undefined): void {
    this.#command = command;
  }

  dispose(): void {
    for (const [signal, listener] of this.#listeners) process.off(signal, listener);
    this.#listeners.clear();
  }

  #onSignal(signal: NodeJS.Signals): void {
    const command = this.#command;
    if (command?.pid === undefined) {
      this.received ??= signal;
      this.#controller.abort(new Error(`interrupted by ${signal}`));
      return;
    }
    if (this.placement.sentByTerminal.has(signal)) return;
    try {
      // Its own group: the command and what it started, as a terminal or `kill -<pgid>` reaches them.
      if (this.placement.ownGroup) process.kill(-command.pid, signal);
      else command.kill(signal);
    } catch {
      // ESRCH: it has just exited; its 'exit' event is on its way.
    }
  }
}
