import type { ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { hasControllingTerminal } from './controlling-terminal';

/** The signals `slotlock run` catches: it must outlive them to release its locks. */
export const CAUGHT_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

/**
 * Where the command runs, and whether slotlock passes signals on to it. Node does not
 * tell who sent a signal, so this is decided once, from where slotlock runs:
 * - With a controlling terminal (in the foreground or as a background job), the command
 *   stays in slotlock's process group and session, as it would be without slotlock: it
 *   keeps the terminal (reads it, opens /dev/tty for a password prompt, is stopped by
 *   Ctrl-Z with slotlock, gets window resizes). The terminal and job control signal the
 *   whole group (Ctrl-C, Ctrl-\, a hangup, `kill %1`, `kill 0`, `kill -TERM -PGID`), so
 *   the command gets each signal straight from them, once; slotlock passes NONE on, or it
 *   would get it twice (and many tools take a second Ctrl-C as "exit now, skip the
 *   cleanup"). A signal sent to slotlock's pid alone therefore does not reach the
 *   command: slotlock waits for it to exit, then releases and exits, as flock(1), which
 *   never relays.
 * - Without one (a service, cron, CI, docker), the command gets a session and process
 *   group of its own, so no signal meant for slotlock's group reaches it directly, and
 *   slotlock passes every signal it catches on to the command's group, once. A SIGKILL
 *   cannot be passed on: there the command outlives it.
 * On Windows there are no process groups to speak of: every signal is passed on.
 */
export interface CommandPlacement {
  /** spawn's `detached`: the command leads a new session and process group. */
  readonly ownGroup: boolean;
  /** Whether the signals slotlock catches while the command runs are passed on to it. */
  readonly relaySignals: boolean;
}

/** The placement for this process; see {@link CommandPlacement}. */
export function placeCommand(withTerminal: boolean = hasControllingTerminal()): CommandPlacement {
  if (process.platform === 'win32') return { ownGroup: false, relaySignals: true };
  return withTerminal ? { ownGroup: false, relaySignals: false } : { ownGroup: true, relaySignals: true };
}

/**
 * While installed, {@link CAUGHT_SIGNALS} do not kill slotlock: the first one caught
 * aborts {@link signal} (a wait for locks stops, and gives back what it took), and
 * {@link received} says which it was. `divert` may claim a signal first (returns true):
 * it is then not an interruption (`run` passes it on to its command).
 */
export class Interruptions {
  readonly #controller = new AbortController();
  readonly #listeners = new Map<NodeJS.Signals, () => void>();
  /** The first signal caught and not diverted. */
  received: NodeJS.Signals | undefined;

  constructor(divert: (signal: NodeJS.Signals) => boolean = () => false) {
    for (const signal of CAUGHT_SIGNALS) {
      const listener = (): void => {
        if (divert(signal)) return;
        this.received ??= signal;
        this.#controller.abort(new Error(`interrupted by ${signal}`));
      };
      this.#listeners.set(signal, listener);
      process.on(signal, listener);
    }
  }

  /** Aborts on the first signal caught and not diverted. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  dispose(): void {
    for (const [signal, listener] of this.#listeners) process.off(signal, listener);
    this.#listeners.clear();
  }
}

/**
 * While installed, {@link CAUGHT_SIGNALS} do not kill slotlock (it must release its locks
 * first). Before the command starts they abort the wait for the locks ({@link abortSignal});
 * while it runs they are passed on to it or not, as its {@link CommandPlacement} says, and
 * slotlock exits when it does.
 */
export class SignalRelay {
  readonly #interruptions: Interruptions;
  #command: ChildProcess | undefined;

  constructor(readonly placement: CommandPlacement) {
    this.#interruptions = new Interruptions((signal) => this.#divert(signal));
  }

  /** Aborts on the first signal caught while no command runs. */
  get abortSignal(): AbortSignal {
    return this.#interruptions.signal;
  }

  /** The first signal caught while no command ran. */
  get received(): NodeJS.Signals | undefined {
    return this.#interruptions.received;
  }

  /** Passes signals on to `command` from now on; `undefined` once it has exited. */
  forwardTo(command: ChildProcess | undefined): void {
    this.#command = command;
  }

  /**
   * Sends `signal` to the running command as slotlock's own decision (its session was
   * lost), whatever the placement: to its process group when it has one of its own, else
   * to the command alone (with a terminal it shares slotlock's group).
   */
  signalCommand(signal: NodeJS.Signals): void {
    const command = this.#command;
    if (command?.pid !== undefined) this.#send(command, command.pid, signal);
  }

  dispose(): void {
    this.#interruptions.dispose();
  }

  /** True when the signal is the command's business (it runs), false when it interrupts slotlock. */
  #divert(signal: NodeJS.Signals): boolean {
    const command = this.#command;
    if (command?.pid === undefined) return false;
    // With a terminal the command got it from the terminal or job control already (see CommandPlacement).
    if (this.placement.relaySignals) this.#send(command, command.pid, signal);
    return true;
  }

  #send(command: ChildProcess, pid: number, signal: NodeJS.Signals): void {
    try {
      // Its own group: the command and what it started, as a terminal or `kill -<pgid>` reaches them.
      if (this.placement.ownGroup) process.kill(-pid, signal);
      else command.kill(signal);
    } catch {
      // ESRCH: it has just exited; its 'exit' event is on its way.
    }
  }
}

/** slotlock's exit code for a signal: 128+N, as shells report a process killed by signal N. */
export function exitCodeOfSignal(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}
