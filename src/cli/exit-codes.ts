import { DATABASE_URL_ENV, embeddedDatabaseUrl } from '../index';

/**
 * The exit codes of every `slotlock` subcommand, shown in `slotlock --help`.
 * 75 is EX_TEMPFAIL from sysexits.h: "try again later", which is what a held lock means.
 * 76, next to it, is `run`'s alone: its session was lost, so the locks were not held all along.
 */
export const EXIT = Object.freeze({
  /** Done. */
  ok: 0,
  /** The database could not be reached or used (bad URL, server down, missing table…). */
  error: 1,
  /** Bad arguments: unknown option, missing --owner, an empty key… */
  usage: 2,
  /** A requested lock is held by someone (EX_TEMPFAIL); nothing was taken. */
  held: 75,
  /**
   * `run` only: the session holding its locks was lost (no heartbeat reached the database
   * within the TTL, or its row was deleted): the command, if it had started, got SIGTERM.
   */
  lost: 76,
});

/** Text for the end of `slotlock --help`; `embeddedUrl` is the database used when no URL is given. */
export function exitCodesHelp(embeddedUrl: string = embeddedDatabaseUrl()): string {
  return `
Exit codes:
  0      ok
  1      error: the database cannot be reached or used, or its driver is not installed (the message says what to do)
  2      usage: bad arguments (unknown option, missing --owner, empty key...)
  75     held: a requested lock is held (EX_TEMPFAIL); nothing was taken
  76     lost (run only): the session holding run's locks was lost; the command got SIGTERM
  128+N  interrupted by signal N while waiting for a lock (--wait); nothing was taken
  run exits with its command's code instead (128+N when the command is killed by signal N)

Database: --url, else $${DATABASE_URL_ENV}, else the embedded SQLite file ${embeddedUrl}
(mysql://user:password@host:3306/database, postgres://..., sqlite:path; percent-encode
special characters of the password and database: / as %2F, % as %25, @ as %40; an IPv6
host in brackets, [::1]; no #fragment; the one query parameter is
?sslmode=disable|verify-full|require|no-verify: TLS verified, or not with no-verify).
Set SLOTLOCK_DEBUG=1 to print stack traces of unexpected errors.`;
}
