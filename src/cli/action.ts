/**
 * Wraps a subcommand's body for commander's `.action()`: the body resolves to the exit
 * code, which becomes `process.exitCode` (the process then ends by itself once the
 * DataSource is closed, so stdout is fully flushed). What it throws reaches `runCli`.
 */
export function exitWith<Args extends unknown[]>(
  body: (...args: Args) => Promise<number>,
): (...args: Args) => Promise<void> {
  return async (...args: Args) => {
    process.exitCode = await body(...args);
  };
}
