import type { Command } from 'commander';
import { SlotLockException } from '../../index';
import { exitWith } from '../action';
import { acquireWaiting } from '../backoff';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { checkLockKeys, checkOwnerOption, jsonOption, ownerOption, urlOption, waitOption } from '../options';
import { plural, reportHeld } from '../report-held';

interface AcquireOptions {
  readonly owner: string;
  readonly wait?: number;
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock acquire --owner O KEY...` */
export function registerAcquire(program: Command): void {
  program
    .command('acquire')
    .summary('take every lock named, or none')
    .description(
      'Takes every KEY for OWNER in one statement, or none of them. Locks never expire: they last until ' +
        '`slotlock release --owner OWNER`. When any KEY is held (by anyone, OWNER included), prints each held ' +
        'key with its owner and exits 75; with --wait, tries again with backoff until the time is up.',
    )
    .argument('<keys...>', 'lock keys, e.g. "host(7)" "licence.slot(0)"')
    .addOption(ownerOption())
    .addOption(waitOption())
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText(
      'after',
      `
Exit codes: 0 acquired, 75 held (nothing taken), 1 database error, 2 bad arguments.

Example:
  slotlock acquire --owner deploy-42 'deploy(production)' || echo "someone else is deploying"`,
    )
    .action(
      exitWith(async (rawKeys: string[], options: AcquireOptions) => {
        const owner = checkOwnerOption(options.owner);
        const keys = checkLockKeys(rawKeys);
        return withDatabase(options.url, async ({ slotLocks }) => {
          let tries = 1;
          try {
            await acquireWaiting(slotLocks, owner, keys, {
              waitSeconds: options.wait,
              onRetry: (error, attempt) => {
                tries += 1;
                if (attempt === 0 && options.json !== true) {
                  const holders = Object.entries(error.getLockMap())
                    .map(([key, holder]) => `"${key}" (owned by "${holder}")`)
                    .join(', ');
                  process.stderr.write(
                    `slotlock: held${holders === '' ? '' : `: ${holders}`}; waiting up to ${options.wait} s\n`,
                  );
                }
              },
            });
          } catch (error) {
            if (!(error instanceof SlotLockException)) throw error;
            reportHeld(error, owner, keys, options.json === true, tries);
            return EXIT.held;
          }
          const distinct = [...new Set(keys)];
          if (options.json === true) {
            process.stdout.write(
              `${JSON.stringify({ acquired: true, owner, keys: distinct, attempts: tries }, null, 2)}\n`,
            );
          } else {
            process.stdout.write(
              `acquired ${plural(distinct.length, 'lock')} for "${owner}": ${distinct.join(', ')}\n`,
            );
          }
          return EXIT.ok;
        });
      }),
    );
}
