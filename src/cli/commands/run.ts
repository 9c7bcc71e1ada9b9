import { spawn } from 'node:child_process';
import * as os from 'node:os';
import type { Command } from 'commander';
import { MAX_OWNER_BYTES, redactUrl, SlotLockException, type SlotLockService } from '../../index';
import { exitWith } from '../action';
import { acquireWaiting } from '../backoff';
import { UsageError } from '../cli-error';
import { describeDatabaseError, withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { hidePasswords } from '../hide-passwords';
import { checkLockKeys, checkOwnerOption, collect, urlOption, waitOption } from '../options';
import { reportHeld } from '../report-held';
import { placeCommand, SignalRelay } from '../signal-relay';

interface RunOptions {
  readonly owner?: string;
  readonly lock?: string[];
  readonly wait?: number;
  readonly url?: string;
}

/** Exit codes of a command that could not be started, as POSIX shells use them. */
const EXIT_NOT_FOUND = 127;
const EXIT_CANNOT_EXECUTE = 126;

/** `slotlock run --owner O --lock KEY... -- CMD ARGS...` */
export function registerRun(program: Command): void {
  program
    .command('run')
    .summary('hold locks while a command runs (flock(1) across machines)')
    .usage('[options] --lock <key> [--lock <key>...] [--] <command> [args...]')
    .description(
      'Takes every --lock (all or none), runs the command with inherited stdio, and releases every lock ' +
        'of the owner when it exits, also after SIGINT, SIGTERM, SIGHUP or SIGQUIT (the command gets each ' +
        "signal once, as without slotlock: see Signals below). Exits with the command's code, 128+N when a signal N killed " +
        'it; exits 75 without running it when a lock stays held. Options go before the command; put -- ' +
        "before a command whose own options could be taken for slotlock's.",
    )
    .argument('<command>', 'the command to run')
    .argument('[args...]', 'its arguments')
    .option('--lock <key>', 'a lock to hold while the command runs (repeat for more)', collect)
    .option('--owner <owner>', 'who holds the locks (default: slotlock-run(<hostname>:<pid>), unique to this run)')
    .addOption(waitOption())
    .addOption(urlOption())
    .passThroughOptions()
    .addHelpText(
      'after',
      `
Exit codes: the command's own; 128+N when signal N killed it; 75 held (command not run);
127 command not found, 126 not executable; 1 database error (also when the locks could not be
released: the message says how to release them); 2 bad arguments.

Signals: slotlock catches SIGINT, SIGTERM, SIGHUP and SIGQUIT (it must release the locks),
and the command gets each signal once, as it would without slotlock:
- With a terminal (in its foreground, or as a background job: cmd &), the command stays in
  slotlock's process group and session, so it keeps the terminal (reads it, opens /dev/tty,
  Ctrl-Z stops it). The terminal and job control signal the whole group (Ctrl-C, Ctrl-\\, a
  hangup, kill %1, kill 0, kill -TERM -PGID), so the command gets them directly and slotlock
  passes none on. A signal sent to slotlock's pid alone does not reach the command: slotlock
  waits for it to exit, then releases the locks and exits (as flock(1), which never relays).
  To stop the command, signal the whole group, or the command itself.
- Without a terminal (a service, cron, CI, docker) the command runs in a process group and
  session of its own; slotlock passes every signal it catches on to that group, once,
  whether it was sent to slotlock alone or to slotlock's group (\`kill -INT -PGID\`).
  Under systemd use KillMode=mixed, so that only slotlock gets the SIGTERM.
If slotlock itself is killed with SIGKILL nothing is passed on (without a terminal the command
outlives it) and the locks stay (they never expire): release them with
\`slotlock release --owner OWNER\`.
Signals the caller ignores are not ignored by the command: Node starts it with every signal
at its default, so under \`nohup slotlock run ...\` a hangup kills the command (and so does a
SIGINT under \`sh -c 'slotlock run ... &'\`). Put nohup inside instead:
\`slotlock run --lock KEY -- nohup CMD\` (the command itself then ignores SIGHUP).

Example:
  slotlock run --lock 'deploy(production)' --wait 600 -- ./deploy.sh production`,
    )
    .action(
      exitWith(async (command: string, args: string[], options: RunOptions) => {
        const owner = checkOwnerOption(options.owner ?? defaultRunOwner());
        const keys = checkLockKeys(options.lock ?? [], '--lock');
        if (keys.length === 0) throw new UsageError('run needs at least one --lock <key>');
        return withDatabase(options.url, ({ slotLocks, url }) =>
          runHoldingLocks(slotLocks, url, owner, keys, options.wait, command, args),
        );
      }),
    );
}

/** `slotlock-run(<hostname>:<pid>)`, the hostname shortened if the owner would pass 64 bytes. */
export function defaultRunOwner(hostname = os.hostname(), pid = process.pid): string {
  const fixed = `slotlock-run(:${pid})`;
  let host = hostname;
  while (Buffer.byteLength(host) + fixed.length > MAX_OWNER_BYTES) host = [...host].slice(0, -1).join('');
  return `slotlock-run(${host}:${pid})`;
}

async function runHoldingLocks(
  slotLocks: SlotLockService,
  url: string,
  owner: string,
  keys: readonly string[],
  waitSeconds: number | undefined,
  command: string,
  args: readonly string[],
): Promise<number> {
  const relay = new SignalRelay(placeCommand());
  try {
    let tries = 1;
    try {
      await acquireWaiting(slotLocks, owner, keys, {
        waitSeconds,
        signal: relay.abortSignal,
        onRetry: (_error, attempt) => {
          tries += 1;
          if (attempt === 0) process.stderr.write(`slotlock: held; waiting up to ${waitSeconds} s\n`);
        },
      });
    } catch (error) {
      if (relay.received !== undefined) return exitCodeOfSignal(relay.received);
      if (!(error instanceof SlotLockException)) throw error;
      reportHeld(error, owner, keys, false, tries);
      return EXIT.held;
    }

    // From here on the locks are ours: whatever happens, release them before exiting.
    let exitCode: number = EXIT.error;
    try {
      exitCode =
        relay.received !== undefined ? exitCodeOfSignal(relay.received) : await runCommand(command, args, relay);
    } finally {
      if (!(await releaseOrExplain(slotLocks, url, owner))) exitCode = EXIT.error;
    }
    return exitCode;
  } finally {
    relay.dispose();
  }
}

/** Runs the command with inherited stdio and resolves to slotlock's exit code for it. */
function runCommand(command: string, args: readonly string[], relay: SignalRelay): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: 'inherit', detached: relay.placement.ownGroup });
    relay.forwardTo(child);
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill(), not a failed start: 'exit' still comes
      const notFound = error.code === 'ENOENT';
      process.stderr.write(
        `slotlock: cannot run ${JSON.stringify(command)}: ${notFound ? 'command not found' : error.message}\n`,
      );
      resolve(notFound ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
    });
    child.once('exit', (code, signal) => {
      relay.forwardTo(undefined);
      resolve(signal !== null ? exitCodeOfSignal(signal) : (code ?? EXIT.error));
    });
  });
}

/** Releases every lock of `owner`; on failure says so, and how to release them by hand. */
async function releaseOrExplain(slotLocks: SlotLockService, url: string, owner: string): Promise<boolean> {
  try {
    await slotLocks.releaseLocks(owner);
    return true;
  } catch (error) {
    const described = describeDatabaseError(error, url);
    const reason = described instanceof Error ? described.message : String(described);
    process.stderr.write(
      hidePasswords(
        `slotlock: could not release the locks of "${owner}": ${reason}; they stay held until ` +
          `\`slotlock release --owner '${owner}' --url '${redactUrl(url)}'\`\n`,
      ),
    );
    return false;
  }
}

function exitCodeOfSignal(signal: NodeJS.Signals): number {
  return 128 + (os.constants.signals[signal] ?? 0);
}
