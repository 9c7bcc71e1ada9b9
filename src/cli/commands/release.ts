import type { Command } from 'commander';
import { exitWith } from '../action';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { checkOwnerOption, jsonOption, ownerOption, urlOption } from '../options';
import { plural } from '../report-held';

interface ReleaseOptions {
  readonly owner: string;
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock release --owner O` */
export function registerRelease(program: Command): void {
  program
    .command('release')
    .summary('release every lock of an owner')
    .description('Releases every lock OWNER holds, in one statement, and prints how many there were (0 is fine).')
    .addOption(ownerOption())
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText('after', '\nExit codes: 0 released (even none), 1 database error, 2 bad arguments.')
    .action(
      exitWith(async (options: ReleaseOptions) => {
        const owner = checkOwnerOption(options.owner);
        return withDatabase(options.url, async ({ slotLocks }) => {
          const released = await slotLocks.releaseLocks(owner);
          if (options.json === true) {
            process.stdout.write(`${JSON.stringify({ owner, released }, null, 2)}\n`);
          } else {
            process.stdout.write(`released ${plural(released, 'lock')} of "${owner}"\n`);
          }
          return EXIT.ok;
        });
      }),
    );
}
