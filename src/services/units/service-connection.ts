import type { DataSource, QueryRunner } from 'typeorm';
import { changeThroughTypeorm, sqliteSharedRunnerOf } from '../../compat/typeorm-driver';
import { driverErrorOf } from '../../errors/driver-error-of';
import type { SlotLockDialect, SqlStatement } from '../../dialects/dialect';
import { canSkipQueryRunner } from '../../dialects/direct-query';
import { SqliteOwnConnection } from '../../dialects/sqlite/own-connection';
import { waitOutBusy } from '../retry-on-contention';
import { serializePerConnection } from '../serialize-per-connection';

/**
 * Where the service's own units of work run (everything but a caller's `{ manager }`):
 * one statement in autocommit, or a transaction of its own on a query runner, on the
 * app's DataSource (MySQL, PostgreSQL: a pool), or on a connection of the service's own
 * to the same file (SQLite, whose DataSource has one connection the app's transactions
 * use: see {@link SqliteOwnConnection}). Units on a single connection run one at a time.
 */
export class ServiceConnection {
  readonly #main: DataSource;
  readonly #dialect: SlotLockDialect;
  readonly #sqlite: SqliteOwnConnection | undefined;

  constructor(main: DataSource, dialect: SlotLockDialect) {
    this.#main = main;
    this.#dialect = dialect;
    this.#sqlite = dialect.singleConnection ? new SqliteOwnConnection(main) : undefined;
  }

  /** The DataSources whose transactions are on the service's database: the app's, and the service's own if any. */
  dataSources(): readonly DataSource[] {
    return this.#sqlite?.dataSources() ?? [this.#main];
  }

  /**
   * Runs one unit of the service's own work on the DataSource it runs on: at once, or,
   * on a single connection, after the units before it. `runsUserCode` marks a unit that
   * calls back into the caller's code (`work`), from which service calls may nest: they
   * run inside it instead of waiting for it.
   */
  exclusive<T>(fn: (dataSource: DataSource) => Promise<T>, runsUserCode = false): Promise<T> {
    const sqlite = this.#sqlite;
    if (sqlite === undefined) return fn(this.#main);
    const own = sqlite.ready;
    if (own === undefined) return sqlite.get().then((opened) => this.#oneAtATime(sqlite, opened, fn, runsUserCode));
    return this.#oneAtATime(sqlite, own, fn, runsUserCode);
  }

  /** Runs one statement in autocommit and resolves to the rows it changed. */
  autocommit(dataSource: DataSource, statement: SqlStatement): Promise<number> {
    if (canSkipQueryRunner(dataSource)) return this.#dialect.autocommitQuery(dataSource, statement);
    return this.withRunner(dataSource, (runner) => changeThroughTypeorm(runner, statement.sql, [...statement.params]));
  }

  /** Runs `fn` on a query runner of the service's own, released on every path. */
  async withRunner<T>(dataSource: DataSource, fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = dataSource.createQueryRunner();
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
  transaction<T>(dataSource: DataSource, fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    return this.withRunner(dataSource, async (runner) => {
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

  /** Closes what the service opened of its own (the SQLite connection); it reopens on demand. */
  async close(): Promise<void> {
    await this.#sqlite?.close();
  }

  #oneAtATime<T>(
    sqlite: SqliteOwnConnection,
    dataSource: DataSource,
    fn: (dataSource: DataSource) => Promise<T>,
    runsUserCode: boolean,
  ): Promise<T> {
    return serializePerConnection(
      dataSource,
      (nested) => {
        // A unit nested in another (a call from `work`) is part of that one's transaction.
        if (nested) return fn(dataSource);
        if (sqlite.sharesAppConnection) {
          this.#refuseAppTransaction();
          return fn(dataSource);
        }
        return waitOutBusy(sqlite.busyTimeoutMs, isSqliteBusy, () => fn(dataSource));
      },
      runsUserCode,
    );
  }

  /**
   * An in-memory SQLite database has only the app's connection: while the app's
   * transaction is open there, the service's own statements would become part of it
   * (and vanish with its rollback). Say so instead.
   */
  #refuseAppTransaction(): void {
    if (sqliteSharedRunnerOf(this.#main)?.isTransactionActive === true) {
      throw new Error(
        'drydock-slotlock: a transaction is open on this in-memory SQLite DataSource, whose one connection the ' +
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

/** SQLITE_BUSY and its kinds: another connection holds the file's lock. */
function isSqliteBusy(error: unknown): boolean {
  return driverErrorOf(error)?.code?.startsWith('SQLITE_BUSY') === true;
}
