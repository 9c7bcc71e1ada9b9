import type { Command } from 'commander';
import { exitWith } from '../action';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { jsonOption, urlOption } from '../options';
import { plural } from '../report-held';

interface ReapOptions {
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock reap` */
export function registerReap(program: Command): void {
  program
    .command('reap')
    .summary('free the locks of expired sessions')
    .description(
      'Deletes every expired session (a `slotlock run` or an app that died without closing it, or lost its ' +
        'database for longer than its TTL) and every lock it held, and prints how many of each. Never needed ' +
        "for correctness: an acquisition that meets an expired session's locks frees them itself. It keeps " +
        '`slotlock locks` and `slotlock held` free of the dead. Live sessions and durable locks (no session) are ' +
        'left alone. --json prints {"sessions", "locks"}.',
    )
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText(
      'after',
      '\nExit codes: 0 reaped (even none), 1 database error (also when the session table is missing), 2 bad arguments.',
    )
    .action(
      exitWith(async (options: ReapOptions) =>
        withDatabase(options.url, async ({ slotLocks }) => {
          // A missing session table is described by withDatabase (describeDatabaseError).
          const reaped = await slotLocks.reapExpiredSessions();
          if (options.json === true) {
            process.stdout.write(`${JSON.stringify(reaped, null, 2)}\n`);
          } else {
            process.stdout.write(
              `reaped ${plural(reaped.sessions, 'expired session')}, freeing ${plural(reaped.locks, 'lock')}\n`,
            );
          }
          return EXIT.ok;
        }),
      ),
    );
}
