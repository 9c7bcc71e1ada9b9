/**
 * The exit codes of every `slotlock` subcommand, shown in `slotlock --help`.
 * 75 is EX_TEMPFAIL from sysexits.h: "try again later", which is what a held lock means.
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
});

/** Text for the end of `slotlock --help`. */
export const EXIT_CODES_HELP = `
Exit codes:
  0    ok
  1    error: the database cannot be reached or used (the message says what to do)
  2    usage: bad arguments (unknown option, missing --owner, empty key...)
  75   held: a requested lock is held (EX_TEMPFAIL); nothing was taken
  run exits with its command's code instead (128+N when the command is killed by signal N)

Database: --url, else $SLOTLOCK_DATABASE_URL, else mysql://root@127.0.0.1:3306/slotlock.
Set SLOTLOCK_DEBUG=1 to print stack traces of unexpected errors.`;
