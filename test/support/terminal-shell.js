/**
 * A stand-in for a shell in a terminal, for `slotlock run` tests under script(1):
 * `node terminal-shell.js COMMAND ARGS...` runs COMMAND as its foreground job (in its own
 * process group, which is the terminal's foreground group: no job control) and exits
 * with its code. Like a shell waiting for a job, it does not die of the terminal's
 * Ctrl-C or Ctrl-\: they are for the job; and like an interactive shell it ignores
 * SIGTERM, so that a SIGTERM to the whole foreground group is for the job alone.
 */
/* global process */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { spawn } = require('node:child_process');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { constants } = require('node:os');

process.on('SIGINT', () => {});
process.on('SIGQUIT', () => {});
process.on('SIGTERM', () => {});
const [command, ...args] = process.argv.slice(2);
const job = spawn(command, args, { stdio: 'inherit' });
job.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
