import type { Logger } from 'typeorm';
import { hidePasswords } from './hide-passwords';

/**
 * The TypeORM logger of the command's DataSources. TypeORM's default logger prints
 * migration messages on stdout whatever `logging` says (`Migration "…" failed, error: …`),
 * but slotlock's stdout is its own lines and `--json`, and it words every failure itself
 * on stderr. So TypeORM's messages go nowhere, or to stderr (passwords hidden) with
 * SLOTLOCK_DEBUG=1, beside the stack traces.
 */
export function cliTypeormLogger(): Logger {
  const debug = (text: string): void => {
    if (process.env.SLOTLOCK_DEBUG === '1') process.stderr.write(hidePasswords(`slotlock: typeorm: ${text}\n`));
  };
  return {
    logQuery: () => undefined,
    logQueryError: (error, query) => debug(`query failed: ${query}: ${error instanceof Error ? error.message : error}`),
    logQuerySlow: () => undefined,
    logSchemaBuild: (message) => debug(message),
    logMigration: (message) => debug(message),
    log: (_level, message) => debug(String(message)),
  };
}
