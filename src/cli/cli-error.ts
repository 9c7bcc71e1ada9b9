import { EXIT } from './exit-codes';

/**
 * An error the command line reports as one line on stderr (`slotlock: <message>`)
 * before exiting with `exitCode`: no stack trace, the message says what to do.
 */
export class CliError extends Error {
  override readonly name = 'CliError';

  constructor(
    message: string,
    /** The process's exit code; see {@link EXIT}. */
    readonly exitCode: number = EXIT.error,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Bad arguments: exits {@link EXIT.usage}. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}
