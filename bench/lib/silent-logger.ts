import type { Logger } from 'typeorm';

/**
 * A TypeORM logger that logs nothing. Passing a logger object leaves TypeORM's
 * `logging` option unset, so the package keeps its fast autocommit path on MariaDB.
 */
export class SilentLogger implements Logger {
  logQuery(): void {}
  logQueryError(): void {}
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}
}
