import type { Command } from 'commander';
import { SlotLockException } from '../../index';
import { exitWith } from '../action';
import { acquireWaiting } from '../acquire-waiting';
import { withDatabase } from '../database';
import { EXIT } from '../exit-codes';
import { checkLockKeys, checkOwnerOption, jsonOption, ownerOption, urlOption, waitOption } from '../options';
import { plural, reportHeld } from '../report-held';
import { exitCodeOfSignal, Interruptions } from '../signal-relay';

interface AcquireOptions {
  readonly owner: string;
  readonly wait: number;
  readonly json?: boolean;
  readonly url?: string;
}

/** `slotlock acquire --owner O KEY...` */
export function registerAcquire(program: Command): void {
  program
    .command('acquire')
    .summary('take every lock named, or none')
    .description(
      'Takes every KEY for OWNER in one statement, or none of them. The locks are durable: no session, no ' +
        'TTL; they last until `slotlock release --owner OWNER`, whatever becomes of this process (`slotlock run` ' +
        'is the command whose locks go with its process). When any KEY is held (by anyone, OWNER included), ' +
        'prints each held key with its owner and exits 75; with --wait, waits for them until the time is up. ' +
        'A lock held by a session that has expired is freed and taken.',
    )
    .argument('<keys...>', 'lock keys, e.g. "host(7)" "licence.slot(0)"')
    .addOption(ownerOption())
    .addOption(waitOption())
    .addOption(jsonOption())
    .addOption(urlOption())
    .addHelpText(
      'after',
      `
Exit codes: 0 acquired, 75 held (nothing taken), 1 database error, 2 bad arguments,
128+N when signal N (Ctrl-C: 130, SIGTERM: 143) stopped the wait (nothing taken).

Example:
  slotlock acquire --owner deploy-42 'deploy(production)' || echo "someone else is deploying"`,
    )
    .action(
      exitWith(async (rawKeys: string[], options: AcquireOptions) => {
        const owner = checkOwnerOption(options.owner);
        const keys = checkLockKeys(rawKeys);
        return withDatabase(options.url, async ({ slotLocks }) => {
          // From the first try on: a signal stops the wait, and the service gives back what it took.
          const interruptions = new Interruptions();
          const started = Date.now();
          let waited = false;
          try {
            await acquireWaiting(slotLocks, owner, keys, {
              waitSeconds: options.wait,
              signal: interruptions.signal,
              onWait: (error) => {
                waited = true;
                if (options.json === true) return;
                const holders = Object.entries(error.getLockMap())
                  .map(([key, holder]) => `"${key}" (owned by "${holder}")`)
                  .join(', ');
                process.stderr.write(
                  `slotlock: held${holders === '' ? '' : `: ${holders}`}; waiting up to ${options.wait} s\n`,
                );
              },
            });
          } catch (error) {
            const signal = interruptions.received;
            if (signal !== undefined) {
              process.stderr.write(`slotlock: interrupted by ${signal}; nothing taken\n`);
              return exitCodeOfSignal(signal);
            }
            if (!(error instanceof SlotLockException)) throw error;
            reportHeld(error, owner, keys, options.json === true, waited ? Date.now() - started : 0);
            return EXIT.held;
          } finally {
            interruptions.dispose();
          }
          const distinct = [...new Set(keys)];
          if (options.json === true) {
            const waitedMs = waited ? Date.now() - started : 0;
            process.stdout.write(`${JSON.stringify({ acquired: true, owner, keys: distinct, waitedMs }, null, 2)}\n`);
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
