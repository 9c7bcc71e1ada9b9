import type { Logger } from 'typeorm';

/**
 * A TypeORM logger that remembers every statement sent, so a test can assert that a
 * call sent no query at all, or how many INSERTs it took.
 */
export class QueryLog implements Logger {
  readonly queries: Array<{ sql: string; params: unknown[] }> = [];

  logQuery(query: string, parameters?: unknown[]): void {
    this.queries.push({ sql: query, params: parameters ?? [] });
  }
  /** Statements that failed, with their errors. */
  readonly errors: Array<{ sql: string; error: unknown }> = [];
  logQueryError(error: string | Error, query: string): void {
    this.errors.push({ sql: query, error });
  }
  logQuerySlow(): void {}
  logSchemaBuild(): void {}
  logMigration(): void {}
  log(): void {}

  /** Forgets what was logged so far. */
  clear(): void {
    this.queries.length = 0;
    this.errors.length = 0;
  }

  /** Statements whose SQL starts with `prefix` (case-insensitive). */
  matching(prefix: string): Array<{ sql: string; params: unknown[] }> {
    return this.queries.filter((query) => query.sql.trimStart().toUpperCase().startsWith(prefix.toUpperCase()));
  }
}
