import type { Command } from 'commander';
import { exitWith } from '../action';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { checkLockKeys, jsonOption, urlOption } from '../options';
import { printLocks } from './print-locks';

interface HeldOptions {
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock held KEY...` */
export function registerHeld(program: Command): void {
  program
    .command('held')
    .summary('show which of the keys are held, and by whom')
    .description(
      'Shows which of the KEYs are held: key, owner and index. Keys nobody holds are not listed. ' +
        '--json prints [{"key", "owner", "index"}, ...] ([] when all are free).',
    )
    .argument('<keys...>', 'lock keys to look up')
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText('after', '\nExit codes: 0 looked up (held or not), 1 database error, 2 bad arguments.')
    .action(
      exitWith(async (rawKeys: string[], options: HeldOptions) => {
        const keys = checkLockKeys(rawKeys);
        return withDatabase(
          options.url,
          async ({ slotLocks }) => {
            const none = keys.length === 1 ? `"${keys[0]}" is free` : `none of the ${keys.length} keys is held`;
            printLocks(await slotLocks.loadHeldLocks(keys), options.json === true, none);
            return EXIT.ok;
          },
          // Looking changes nothing, not even an SQLite file's journal mode.
          { readOnly: true },
        );
      }),
    );
}
