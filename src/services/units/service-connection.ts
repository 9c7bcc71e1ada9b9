import type { DataSource, QueryRunner } from 'typeorm';
import type { IsolationLevel } from '../../dialects/dialect';
import { changeThroughTypeorm } from '../../compat/typeorm-driver';
import { driverErrorOf } from '../../errors/driver-error-of';
import type { SlotLockDialect, SqlStatement } from '../../dialects/dialect';
import { canSkipQueryRunner } from '../../dialects/direct-query';
import { SqliteOwnConnection } from '../../dialects/sqlite/own-connection';
import { waitOutBusy } from '../retry-on-contention';
import { insideUnitOf, isIdle, serializePerConnection } from '../serialize-per-connection';

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
    this.#sqlite = dialect.singleConnection ? SqliteOwnConnection.of(main) : undefined;
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
    // How long this attempt may wait for the file, its wait for its turn included: the busy timeout.
    const deadline = Date.now() + sqlite.busyTimeoutMs;
    const own = sqlite.ready;
    if (own === undefined) {
      return sqlite.get().then((opened) => this.#oneAtATime(opened, deadline, fn, runsUserCode));
    }
    return this.#oneAtATime(own, deadline, fn, runsUserCode);
  }

  /**
   * The DataSource on which one statement can run at once and synchronously
   * ({@link autocommitNow}), or undefined: only where the driver answers synchronously
   * (SQLite), on the service's own connection once open, while no unit of this process
   * is queued or running there (a unit's `work` calls the service from inside it: that
   * call queues as ever) and nothing needs TypeORM's runner. Run so, a statement does
   * what it would do queued, without the promise layers of a unit (issue 12, item 1).
   */
  get synchronousNow(): DataSource | undefined {
    const own = this.#dialect.autocommitNow === undefined ? undefined : this.#sqlite?.ready;
    return own !== undefined && isIdle(own) && canSkipQueryRunner(own) ? own : undefined;
  }

  /** Runs one statement in autocommit on a DataSource from {@link synchronousNow}: the rows it changed, or it throws. */
  autocommitNow(dataSource: DataSource, statement: SqlStatement): number {
    return this.#dialect.autocommitNow!(dataSource, statement);
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
  transaction<T>(
    dataSource: DataSource,
    fn: (runner: QueryRunner) => Promise<T>,
    isolation?: IsolationLevel,
  ): Promise<T> {
    return this.withRunner(dataSource, async (runner) => {
      await runner.startTransaction(isolation);
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
   * Closes what the service opened of its own (the SQLite connection), once the units in
   * flight on it have ended; it reopens on demand.
   */
  async close(): Promise<void> {
    const sqlite = this.#sqlite;
    if (sqlite === undefined) return;
    // A call that was waiting for the connection to open queues its unit first.
    await sqlite.opened();
    const own = sqlite.ready;
    if (own === undefined) return sqlite.close();
    await serializePerConnection(own, () => sqlite.close());
  }

  #oneAtATime<T>(
    dataSource: DataSource,
    deadline: number,
    fn: (dataSource: DataSource) => Promise<T>,
    runsUserCode: boolean,
  ): Promise<T> {
    const sharesApp = dataSource === this.#main;
    return serializePerConnection(
      dataSource,
      (nested) => {
        // A unit nested in another (a call from `work`) is part of that one's transaction.
        if (nested) return fn(dataSource);
        // close() ran while this unit waited for its turn: the next call reopens, and so does this one.
        if (!sharesApp && !dataSource.isInitialized) return this.exclusive(fn, runsUserCode);
        if (sharesApp) return this.#onAppConnection(() => fn(dataSource));
        return waitOutBusy(deadline, isSqliteBusy, () => fn(dataSource));
      },
      {
        // On the app's connection every unit is marked, so that its own BEGIN passes the guard.
        reentrant: runsUserCode || sharesApp,
        maxWaitMs: Math.max(0, deadline - Date.now()),
        // Busy like the file's lock held by another process: judged (and retried) the same way.
        timeoutError: () =>
          Object.assign(
            new Error(
              `drydock-slotlock: waited the busy timeout (${this.#sqlite!.busyTimeoutMs} ms) for this process's ` +
                'earlier units on the SQLite database (a commitWithLocks whose work awaits this call would wait for ever)',
            ),
            { code: 'SQLITE_BUSY' },
          ),
      },
    );
  }

  /**
   * A unit on the app's own connection (an in-memory database, which cannot be opened
   * twice). While the app's transaction is open there, the unit's statements would join
   * it: refused. While the unit runs, a transaction the app begins on the connection
   * would become a savepoint inside the unit (and vanish with its rollback): refused
   * too, unless begun from inside the unit (`work`'s own nested transactions).
   */
  async #onAppConnection<T>(fn: () => Promise<T>): Promise<T> {
    const shared = this.#main.createQueryRunner(); // SQLite: the one runner every caller shares
    if (shared.isTransactionActive) {
      throw new Error(
        'drydock-slotlock: a transaction is open on this in-memory SQLite DataSource, whose one connection the ' +
          "service's own statements would join; pass { manager } from that transaction, or call after it ends",
      );
    }
    const restore = refuseTransactionsFromOutside(shared, this.#main);
    try {
      return await fn();
    } finally {
      restore();
    }
  }
}

/**
 * While a unit runs on the shared runner, its transaction methods refuse callers from
 * outside the unit; resolves the function that puts them back.
 */
function refuseTransactionsFromOutside(runner: QueryRunner, key: object): () => void {
  const originals = {
    startTransaction: runner.startTransaction,
    commitTransaction: runner.commitTransaction,
    rollbackTransaction: runner.rollbackTransaction,
  };
  for (const [name, original] of Object.entries(originals) as Array<[keyof typeof originals, () => Promise<void>]>) {
    runner[name] = function guarded(this: QueryRunner, ...args: unknown[]): Promise<void> {
      if (insideUnitOf(key)) return (original as (...a: unknown[]) => Promise<void>).apply(this, args);
      return Promise.reject(
        new Error(
          'drydock-slotlock: a transaction cannot begin or end on this in-memory SQLite DataSource while a ' +
            'slot-lock unit runs on its one connection: it would become part of that unit; try again after it',
        ),
      );
    } as QueryRunner[typeof name];
  }
  return () => Object.assign(runner, originals);
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
  // Not every error's code is a string (a DOMException's is a number).
  const code: unknown = driverErrorOf(error)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}
