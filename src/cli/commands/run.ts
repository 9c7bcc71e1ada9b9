import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { Option, type Command } from 'commander';
import {
  MAX_OWNER_BYTES,
  redactUrl,
  SlotLockException,
  SlotLockSessionLostError,
  type SlotLockService,
  type SlotLockSession,
} from '../../index';
import { reapMarginMs } from '../../sessions/session-table';
import { SlotLockSessionError } from '../../errors/slot-lock-session.error';
import { exitWith } from '../action';
import { acquireWaiting } from '../acquire-waiting';
import { CliError, UsageError } from '../cli-error';
import { describeDatabaseError, isMissingSessionTable, withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { hidePasswords } from '../hide-passwords';
import {
  checkLockKeys,
  checkOwnerOption,
  collect,
  DEFAULT_TTL_SECONDS,
  parseTtlSeconds,
  urlOption,
  waitOption,
} from '../options';
import { formatSeconds, reportHeld } from '../report-held';
import { exitCodeOfSignal, placeCommand, SignalRelay } from '../signal-relay';

interface RunOptions {
  readonly owner?: string;
  readonly lock?: string[];
  readonly wait: number;
  readonly ttl: number;
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
        'it; exits 75 without running it when a lock stays held. The locks are held under a session (--ttl, ' +
        'see Sessions below): should slotlock die, even by kill -9, they are free once the TTL has passed; ' +
        '`acquire` and `release` stay durable (no session). Options go before the command; put -- ' +
        "before a command whose own options could be taken for slotlock's.",
    )
    .argument('<command>', 'the command to run')
    .argument('[args...]', 'its arguments')
    .option('--lock <key>', 'a lock to hold while the command runs (repeat for more)', collect)
    .option('--owner <owner>', 'who holds the locks (default: slotlock-run(<hostname>:<pid>), unique to this run)')
    .addOption(waitOption())
    .addOption(
      new Option(
        '--ttl <seconds>',
        'hold the locks under a session of this TTL, renewed every third of it while slotlock lives ' +
          '(decimals allowed, at least 0.3); 0: no session, the locks stay until released (as `acquire`)',
      )
        .default(DEFAULT_TTL_SECONDS)
        .argParser(parseTtlSeconds),
    )
    .addOption(urlOption())
    .passThroughOptions()
    .addHelpText(
      'after',
      `
Exit codes: the command's own; 128+N when signal N killed it; 75 held (command not run);
76 session lost (the command got SIGTERM, or was not run); 128+N when signal N stopped the
wait (--wait; command not run); 127 command not found, 126 not executable; 1 database error
(also when the locks could not be released: the message says how to release them); 2 bad
arguments.

Sessions: with --ttl T (default ${DEFAULT_TTL_SECONDS}), the locks belong to a session that slotlock renews
every T/3 seconds, by the database server's clock. Should slotlock die without releasing them
(kill -9, a crash, the machine gone), they are free once T and a margin of min(1 s, T/3) have
passed since its last renewal: the next acquisition that meets them frees them (\`slotlock reap\`
frees them all). Should the session be lost while slotlock lives (no renewal reached the
database for T: the server unreachable, or its row deleted), slotlock says so on stderr, sends
the command SIGTERM (to its process group when it has one of its own), waits for it to exit,
and exits 76: others may hold the locks by then. A command that ignores SIGTERM runs on,
without the locks. --ttl 0 holds durable locks, as before sessions: they outlive a kill -9
until \`slotlock release --owner OWNER\`. The session table comes with \`slotlock migrate\`.

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
outlives it, and runs on without the locks once the session expires); with --ttl 0 the locks
stay: release them with \`slotlock release --owner OWNER\`.
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
          runHoldingLocks(
            slotLocks,
            url,
            owner,
            keys,
            { ttlSeconds: options.ttl, waitSeconds: options.wait, ownerChosen: options.owner !== undefined },
            command,
            args,
          ),
        );
      }),
    );
}

/**
 * `slotlock-run(<hostname>:<pid>)`, or `slotlock-run(<hostname>:<pid>:<suffix>)`, the
 * hostname shortened if the owner would pass 64 bytes.
 */
export function defaultRunOwner(hostname = os.hostname(), pid = process.pid, suffix?: string): string {
  const tail = suffix === undefined ? `${pid}` : `${pid}:${suffix}`;
  const fixed = `slotlock-run(:${tail})`;
  let host = hostname;
  while (Buffer.byteLength(host) + fixed.length > MAX_OWNER_BYTES) host = [...host].slice(0, -1).join('');
  return `slotlock-run(${host}:${tail})`;
}

/** How `run` takes its locks: `--ttl` and `--wait`, in seconds. */
interface RunHolding {
  readonly ttlSeconds: number;
  readonly waitSeconds: number;
  /** True when `--owner` named the owner; false when it is {@link defaultRunOwner}'s. */
  readonly ownerChosen: boolean;
}

async function runHoldingLocks(
  slotLocks: SlotLockService,
  url: string,
  ownerAsked: string,
  keys: readonly string[],
  holding: RunHolding,
  command: string,
  args: readonly string[],
): Promise<number> {
  const relay = new SignalRelay(placeCommand());
  let session: SlotLockSession | undefined;
  let owner = ownerAsked;
  try {
    // The session first: the locks are taken under it (and a kill -9 while waiting leaves nothing behind).
    if (holding.ttlSeconds > 0) {
      session = await openRunSession(slotLocks, url, owner, holding);
      owner = session.ownerPHID;
    }
    const started = Date.now();
    let waited = false;
    try {
      await acquireWaiting(slotLocks, owner, keys, {
        waitSeconds: holding.waitSeconds,
        signal: relay.abortSignal,
        onWait: () => {
          waited = true;
          process.stderr.write(`slotlock: held; waiting up to ${holding.waitSeconds} s\n`);
        },
      });
    } catch (error) {
      if (relay.received !== undefined) {
        process.stderr.write(`slotlock: interrupted by ${relay.received}; nothing taken, the command was not run\n`);
        return exitCodeOfSignal(relay.received);
      }
      if (error instanceof SlotLockSessionLostError) {
        process.stderr.write(`slotlock: ${lostMessage(error)}; the command was not run\n`);
        return EXIT.lost;
      }
      if (!(error instanceof SlotLockException)) throw error;
      reportHeld(error, owner, keys, false, waited ? Date.now() - started : 0);
      return EXIT.held;
    }

    // From here on the locks are ours: whatever happens, release them before exiting.
    let exitCode: number = EXIT.error;
    try {
      if (relay.received !== undefined) {
        exitCode = exitCodeOfSignal(relay.received);
      } else if (session?.lostReason !== undefined) {
        process.stderr.write(`slotlock: ${lostMessage(session.lostReason)}; the command was not run\n`);
        exitCode = EXIT.lost;
      } else {
        exitCode = await runCommand(command, args, relay, session);
        // Lost while the command ran: it got SIGTERM, and whatever it did was not all under the locks.
        if (session?.lostReason !== undefined) exitCode = EXIT.lost;
      }
    } finally {
      const released = await releaseOrExplain(slotLocks, url, owner, session);
      session = undefined;
      if (!released && exitCode !== EXIT.lost) exitCode = EXIT.error;
    }
    return exitCode;
  } finally {
    // Still open: the locks were not taken (held, interrupted, lost); nothing of them to give back but the row.
    await session?.close().catch(() => undefined);
    relay.dispose();
  }
}

/**
 * Opens run's session (owner `owner`, TTL `ttlSeconds`). A live session of the same
 * owner (another `slotlock run --owner` of it) is a held owner: exit 75; a missing session
 * table says how to create it, or to do without.
 */
async function openRunSession(
  slotLocks: SlotLockService,
  url: string,
  owner: string,
  holding: RunHolding,
): Promise<SlotLockSession> {
  const ttlMs = Math.round(holding.ttlSeconds * 1000);
  try {
    return await slotLocks.openSession({ ownerPHID: owner, ttlMs });
  } catch (error) {
    if (error instanceof SlotLockSessionError && error.problem === 'owner-in-use' && !holding.ownerChosen) {
      // This host and pid had a run before that has not expired yet: a container restarted
      // after a crash (pid 1 again). This process is not that one; it holds as an owner of its own.
      const fresh = defaultRunOwner(os.hostname(), process.pid, randomBytes(4).toString('hex'));
      process.stderr.write(
        `slotlock: a live session of "${owner}" exists (an earlier run with this pid on this host); holding as "${fresh}"\n`,
      );
      return openRunSession(slotLocks, url, fresh, { ...holding, ownerChosen: true });
    }
    if (error instanceof SlotLockSessionError && error.problem === 'owner-in-use') {
      throw new CliError(
        `another process holds a live session of "${owner}" (another \`slotlock run --owner\` of it?): ` +
          'give each run an owner of its own, or leave --owner out; nothing taken',
        EXIT.held,
        { cause: error },
      );
    }
    if (isMissingSessionTable(error)) {
      throw new CliError(
        `the session table does not exist on ${redactUrl(url)}: create it with \`slotlock migrate\` (same --url), ` +
          'or run without a session: --ttl 0 (the locks then stay after a kill -9 until released)',
        EXIT.error,
        { cause: error },
      );
    }
    throw error;
  }
}

/** A lost session, in one line: whose, and why (the service's words, without its prefix). */
function lostMessage(error: SlotLockSessionLostError): string {
  return `lost the session holding the locks: ${error.message.replace(/^drydock-slotlock: /, '')}`;
}

/**
 * Runs the command with inherited stdio and resolves to slotlock's exit code for it.
 * Should `session` be lost meanwhile, the command gets SIGTERM (it no longer holds the locks).
 */
function runCommand(
  command: string,
  args: readonly string[],
  relay: SignalRelay,
  session: SlotLockSession | undefined,
): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, [...args], { stdio: 'inherit', detached: relay.placement.ownGroup });
    relay.forwardTo(child);
    const onLost = (): void => {
      process.stderr.write(`slotlock: ${lostMessage(session!.lostReason!)}; sending the command SIGTERM\n`);
      relay.signalCommand('SIGTERM');
    };
    session?.signal.addEventListener('abort', onLost, { once: true });
    const done = (exitCode: number): void => {
      session?.signal.removeEventListener('abort', onLost);
      relay.forwardTo(undefined);
      resolve(exitCode);
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill(), not a failed start: 'exit' still comes
      const notFound = error.code === 'ENOENT';
      process.stderr.write(
        `slotlock: cannot run ${JSON.stringify(command)}: ${notFound ? 'command not found' : error.message}\n`,
      );
      done(notFound ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE);
    });
    child.once('exit', (code, signal) => {
      done(signal !== null ? exitCodeOfSignal(signal) : (code ?? EXIT.error));
    });
  });
}

/**
 * Releases every lock of `owner` (closing `session`, which deletes its row too); on
 * failure says so, and how to release them by hand.
 */
async function releaseOrExplain(
  slotLocks: SlotLockService,
  url: string,
  owner: string,
  session: SlotLockSession | undefined,
): Promise<boolean> {
  try {
    await (session !== undefined ? session.close() : slotLocks.releaseLocks(owner));
    return true;
  } catch (error) {
    const described = describeDatabaseError(error, url);
    const reason = described instanceof Error ? described.message : String(described);
    const release = `\`slotlock release --owner '${owner}' --url '${redactUrl(url)}'\``;
    const until =
      session !== undefined
        ? `they are free once the session expires (within ${formatSeconds(session.ttlMs + reapMarginMs(session.ttlMs))}), or at once with ${release}`
        : `they stay held until ${release}`;
    process.stderr.write(hidePasswords(`slotlock: could not release the locks of "${owner}": ${reason}; ${until}\n`));
    return false;
  }
}
