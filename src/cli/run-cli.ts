import { CommanderError } from 'commander';
import { SlotLockException } from '../index';
import { CliError } from './cli-error';
import { firstLine } from './database';
import { EXIT } from './exit-codes';
import { hidePasswords, rememberPasswordsOfArguments } from './hide-passwords';
import { inCommandLineTerms } from './options';
import { createProgram } from './program';

/**
 * Runs `slotlock` with `argv` (as `process.argv`) and resolves to the exit code. Every
 * failure becomes one line on stderr, `slotlock: <what is wrong and what to do>`, with
 * no stack trace (set SLOTLOCK_DEBUG=1 for one).
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  process.exitCode = undefined;
  rememberPasswordsOfArguments(argv);
  try {
    await createProgram().parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    // Commander printed its own message (or the help) already.
    if (error instanceof CommanderError) return commanderExitCode(error);
    const { message, exitCode } = describeFailure(error);
    process.stderr.write(`slotlock: ${hidePasswords(message)}\n`);
    if (process.env.SLOTLOCK_DEBUG === '1' && error instanceof Error && error.stack !== undefined) {
      process.stderr.write(`${hidePasswords(error.stack)}\n`);
    }
    return exitCode;
  }
}

/** Help and version exit 0; commander's usage errors (exit 1 by default) exit {@link EXIT.usage}. */
function commanderExitCode(error: CommanderError): number {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
  if (error.code === 'commander.help' && error.exitCode === 0) return EXIT.ok;
  return EXIT.usage;
}

function describeFailure(error: unknown): { message: string; exitCode: number } {
  if (error instanceof CliError) return { message: firstLine(error.message), exitCode: error.exitCode };
  // The service's checks of its arguments (an empty owner, a key too long...).
  if (error instanceof TypeError || error instanceof RangeError) {
    return { message: inCommandLineTerms(firstLine(error.message)), exitCode: EXIT.usage };
  }
  if (error instanceof SlotLockException) return { message: error.message, exitCode: EXIT.held };
  const message = error instanceof Error ? firstLine(error.message) || error.name : String(error);
  return { message: `unexpected error: ${message}`, exitCode: EXIT.error };
}
