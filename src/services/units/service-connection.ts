import type { DataSource, QueryRunner } from 'typeorm';
import type { SlotLockDialect, SqlStatement } from '../../dialects/dialect';
import { canSkipQueryRunner, type AutocommitQuery } from '../../dialects/direct-query';
import { serializePerConnection } from '../serialize-per-connection';

/**
 * Where the service's own units of work run (everything but a caller's `{ manager }`):
 * one statement in autocommit, or a transaction of its own on a query runner. On an
 * engine whose DataSource has a single connection (SQLite) the units run one at a time.
 */
export class ServiceConnection {
  #autocommitQuery: AutocommitQuery | undefined;

  constructor(
    readonly dataSource: DataSource,
    readonly dialect: SlotLockDialect,
  ) {}

  /**
   * Runs one unit of the service's own work: at once, or after the units before it where
   * every runner shares one connection (SQLite). `runsUserCode` marks a unit that calls
   * back into the caller's code (`work`), from which service calls may nest.
   */
  exclusive<T>(fn: () => Promise<T>, runsUserCode = false): Promise<T> {
    if (!this.dialect.singleConnection) return fn();
    return serializePerConnection(
      this.dataSource,
      (nested) => {
        if (!nested) this.#refuseForeignTransaction();
        return fn();
      },
      runsUserCode,
    );
  }

  /** Runs one statement in autocommit and resolves to the rows it changed. */
  autocommit(statement: SqlStatement): Promise<number> {
    if (canSkipQueryRunner(this.dataSource)) {
      this.#autocommitQuery ??= this.dialect.autocommitQuery(this.dataSource);
      return this.#autocommitQuery(statement);
    }
    return this.withRunner(
      async (runner) => (await runner.query(statement.sql, [...statement.params], true)).affected ?? 0,
    );
  }

  /** Runs `fn` on a query runner of the service's own, released on every path. */
  async withRunner<T>(fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    try {
      return await fn(runner);
    } finally {
      await runner.release();
    }
  }

  /**
   * Runs `fn` in a transaction of the service's own (TypeORM's query-runner pattern:
   * start, commit in `try`, roll back in `catch`, release in `finally`).
   */
  transaction<T>(fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    return this.withRunner(async (runner) => {
      await runner.startTransaction();
      try {
        const result = await fn(runner);
        await runner.commitTransaction();
        return result;
      } catch (error) {
        await rollbackQuietly(runner);
        throw error;
      }
    });
  }

  /**
   * On SQLite, TypeORM runs everything on one connection through one query runner: while
   * someone else's transaction is open there, the service's own statements would become
   * part of it (and vanish with its rollback). Say so instead.
   */
  #refuseForeignTransaction(): void {
    const shared = (this.dataSource.driver as { queryRunner?: QueryRunner }).queryRunner;
    if (shared?.isTransactionActive === true) {
      throw new Error(
        'drydock-slotlock: a transaction is open on this SQLite DataSource, whose one connection the ' +
          "service's own statements would join; pass { manager } from that transaction, or call after it ends",
      );
    }
  }
}

/** Rolls back what is left of a transaction; a connection already gone has nothing left to undo. */
export async function rollbackQuietly(runner: QueryRunner): Promise<void> {
  if (!runner.isTransactionActive) return;
  try {
    await runner.rollbackTransaction();
  } catch {
    // The connection is gone or the server already rolled back: nothing is left to undo.
  }
}
