import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { registerAcquire } from './commands/acquire';
import { registerDemo } from './commands/demo';
import { registerHeld } from './commands/held';
import { registerLocks } from './commands/locks';
import { registerMigrate } from './commands/migrate';
import { registerReap } from './commands/reap';
import { registerRelease } from './commands/release';
import { registerRun } from './commands/run';
import { exitCodesHelp } from './exit-codes';
import { hidePasswords } from './hide-passwords';

/**
 * The `slotlock` command. Errors do not exit the process (`exitOverride`): they reach
 * {@link runCli}, which picks the exit code.
 */
export function createProgram(): Command {
  const program = new Command('slotlock')
    .description(
      "Drydock slot locks from the shell: named locks taken all at once or not at all, in Phorge's " +
        'drydock_slotlock table (MySQL/MariaDB, PostgreSQL, or an embedded SQLite file), held until their ' +
        'owner releases them; `run` holds its locks under a session, freed should it die.',
    )
    .version(packageVersion(), '-V, --version')
    // Settings below are copied into each subcommand by .command(), so they come first.
    .exitOverride()
    // Commander's own errors in the same one-line shape as ours: "slotlock: <what>". They quote
    // what was typed ("unknown option '--URL=mysql://root:pw@…'"), so they go through
    // hidePasswords like every other message. (Help and version are fixed text: left as written.)
    .configureOutput({
      outputError: (text, write) => write(hidePasswords(`slotlock: ${text.replace(/^error: /, '')}`)),
    })
    .enablePositionalOptions()
    .showHelpAfterError('(add --help for usage)')
    .addHelpText('after', exitCodesHelp());

  registerMigrate(program);
  registerAcquire(program);
  registerRelease(program);
  registerLocks(program);
  registerHeld(program);
  registerRun(program);
  registerReap(program);
  registerDemo(program);
  return program;
}

function packageVersion(): string {
  // dist/cli/program.js and src/cli/program.ts both sit two levels below package.json.
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}
