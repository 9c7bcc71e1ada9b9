import type { Command } from 'commander';
import { exitWith } from '../action';
import { UsageError } from '../cli-error';
import { cliDatabaseUrl } from '../database';
import { runDemo } from '../demo/run-demo';
import { integerBetween, urlOption } from '../options';

interface DemoOptions {
  readonly url?: string;
  readonly database: string;
  readonly allocators: number;
  readonly bindings: number;
}

/** `slotlock demo` */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary("race allocators without and with slot locks (the seed's test plan, live)")
    .description(
      "Phorge's test plan for slot locks, live, in a few seconds. Next to the database of the URL (the " +
        'embedded SQLite file by default) it drops and recreates the database slotlock_demo (--database; ' +
        'for SQLite the file slotlock_demo.sqlite in the same folder), migrates it, and adds a few bindings. Allocators ' +
        'in separate processes each load the free bindings, pause 300-800 ms, and allocate one. Round 1 ' +
        'without slot locks allocates bindings twice; round 2 takes `binding(ID)` with commitWithLocks and ' +
        'never does. Ends with a before/after table.',
    )
    .addOption(urlOption('a database URL: the demo uses its server (or, for SQLite, its folder)'))
    .option('--database <name>', 'the demo database: DROPPED and recreated', 'slotlock_demo')
    .option('--allocators <n>', 'allocator processes (2-16)', integerBetween(2, 16), 4)
    .option('--bindings <n>', 'bindings to allocate (1-50)', integerBetween(1, 50), 3)
    .addHelpText(
      'after',
      '\nExit codes: 0 round 1 raced and round 2 did not; 1 otherwise (or a database error); 2 bad arguments.',
    )
    .action(
      exitWith(async (options: DemoOptions) => {
        if (!/demo/i.test(options.database)) {
          throw new UsageError(
            `--database ${JSON.stringify(options.database)}: the demo drops and recreates this database, so its name must contain "demo"`,
          );
        }
        return runDemo({
          url: cliDatabaseUrl(options.url),
          database: options.database,
          allocators: options.allocators,
          bindings: options.bindings,
          minPauseMs: 300,
          maxPauseMs: 800,
        });
      }),
    );
}
