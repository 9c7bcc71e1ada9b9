import type { Command } from 'commander';
import { exitWith } from '../action';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { checkOwnerOption, jsonOption, ownerOption, urlOption } from '../options';
import { printLocks } from './print-locks';

interface LocksOptions {
  readonly owner: string;
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock locks --owner O` */
export function registerLocks(program: Command): void {
  program
    .command('locks')
    .summary("list an owner's locks")
    .description(
      'Lists the locks OWNER holds, oldest first: key, owner and index (the 12-letter digest Phorge ' +
        'stores in lockIndex). --json prints [{"key", "owner", "index"}, ...].',
    )
    .addOption(ownerOption())
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText('after', '\nExit codes: 0 listed (even none), 1 database error, 2 bad arguments.')
    .action(
      exitWith(async (options: LocksOptions) => {
        const owner = checkOwnerOption(options.owner);
        return withDatabase(
          options.url,
          async ({ slotLocks }) => {
            printLocks(await slotLocks.loadLocks(owner), options.json === true, `"${owner}" holds no locks`);
            return EXIT.ok;
          },
          // Looking changes nothing, not even an SQLite file's journal mode.
          { readOnly: true },
        );
      }),
    );
}
