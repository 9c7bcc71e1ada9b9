import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { queryThroughTypeorm } from '../../compat/typeorm-driver';
import { driverCause, LocksHeldError } from '../../errors/classify-error';
import { SlotLockException } from '../../errors/slot-lock.exception';
import type { RequestedLock } from '../check-input';
import { retryOnContention } from '../retry-on-contention';
import type { RetryOptions } from '../slot-lock.options';
import { firstRowOf, freeSlotOf, tryFirstFreeStatement, type SlotFamily, type SlotTries } from '../slots/take-slot';
import type { InsertPlan, LockTable } from '../lock-table';
import { insertAll } from './insert-all';
import { rollbackQuietly, type ServiceConnection } from './service-connection';

/**
 * One acquisition attempt where the service owns the transaction. One statement runs
 * in autocommit: it is atomic by itself, and skipping BEGIN/COMMIT saves two round
 * trips (1.3x to 1.6x the cycles on MariaDB); several statements share one transaction.
 * Throws the driver's error (or {@link LocksHeldError}) for the caller to translate.
 */
export function acquireInServiceTransaction(
  table: LockTable,
  connection: ServiceConnection,
  dataSource: DataSource,
  owner: string,
  locks: readonly RequestedLock[],
): Promise<void> {
  const plan = table.planInserts(dataSource, owner, locks);
  return plan instanceof Promise
    ? plan.then((known) => runPlan(table, connection, dataSource, known))
    : runPlan(table, connection, dataSource, plan);
}

/**
 * The usual acquisition, one INSERT of the service's own in autocommit, run at once and
 * synchronously where the connection allows it (see {@link ServiceConnection.synchronousNow}):
 * true when the locks were taken, false when it could not run so (nothing was sent; the
 * caller takes the usual path). Throws what the attempt threw, as
 * {@link acquireInServiceTransaction} would.
 */
export function acquireNow(
  table: LockTable,
  connection: ServiceConnection,
  owner: string,
  locks: readonly RequestedLock[],
): boolean {
  const dataSource = connection.synchronousNow;
  if (dataSource === undefined) return false;
  const plan = table.planInserts(dataSource, owner, locks);
  if (plan instanceof Promise) {
    // The server's limit is not known yet: the usual path waits for the same read (and reports its failure).
    plan.catch(() => undefined);
    return false;
  }
  if (plan.ends.length !== 1) return false; // several statements need a transaction: the usual path
  const statement = table.insertStatement(plan, 0);
  if (connection.autocommitNow(dataSource, statement) < statement.rowCount) throw new LocksHeldError();
  return true;
}

function runPlan(
  table: LockTable,
  connection: ServiceConnection,
  dataSource: DataSource,
  plan: InsertPlan,
): Promise<void> {
  if (plan.ends.length === 1) {
    const statement = table.insertStatement(plan, 0);
    return connection.autocommit(dataSource, statement).then((inserted) => {
      if (inserted < statement.rowCount) throw new LocksHeldError();
    });
  }
  return connection.transaction(dataSource, (runner) => insertAll(runner, table, plan));
}

/**
 * Takes the locks inside a transaction the service opened for `commitWithLocks`: a
 * conflict rolls the transaction back and becomes a SlotLockException at once.
 */
export async function insertOrReport(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  locks: readonly RequestedLock[],
): Promise<void> {
  try {
    await insertAll(runner, table, await table.planInserts(runner, owner, locks));
  } catch (error) {
    if (table.classify(error) !== 'conflict') throw error;
    await rollbackQuietly(runner);
    throw new SlotLockException({
      failure: 'held',
      // On this runner, rolled back: asking the pool for another connection while holding
      // this one could wait forever once every connection is held the same way.
      lockMap: await table.readLockMap(locks, runner),
      cause: driverCause(error),
    });
  }
}

/**
 * Runs the caller's `work` inside the service's transaction and makes sure the
 * transaction is still there to commit (SPEC 4.10). When `work` catches the failure of
 * one of its own statements and returns, the server may have ended the transaction:
 * PostgreSQL aborts it on any error (its COMMIT then quietly rolls back), MySQL rolls it
 * back on a deadlock and runs later statements in autocommit. Resolving then would
 * report locks and writes that were never committed. So:
 * - after a statement through the unit's runner ended the transaction (a MySQL deadlock),
 *   the runner sends no more of `work`'s statements: they would commit one by one;
 * - before COMMIT the service asks whether the transaction is still open (free on
 *   PostgreSQL and SQLite; one query on MySQL, which has no other way to tell), and if
 *   not, throws the statement's own error (the unit rolls back; contention is retried as
 *   anywhere in the unit), or a clear one when the failure went round the runner.
 */
export async function runWork<T>(
  table: LockTable,
  runner: QueryRunner,
  work: (manager: EntityManager) => T | Promise<T>,
): Promise<T> {
  const watch = watchStatements(table, runner);
  let result: T;
  try {
    result = await work(runner.manager);
  } finally {
    watch.stop();
  }
  if (!(await table.dialect.transactionIsOpen(runner))) {
    throw (
      watch.firstError ??
      new Error(
        'drydock-slotlock: commitWithLocks: the transaction was no longer open when work returned ' +
          '(a statement of work failed outside its manager, or work ended the transaction itself); ' +
          'nothing of the unit was committed',
      )
    );
  }
  return result;
}

/**
 * Watches the statements `work` sends through `runner` until `stop()`: remembers the
 * first that failed, and once one has certainly ended the transaction, sends no more.
 * `runner` is the service's own, made for this unit, so wrapping its `query` touches
 * nobody else's object.
 */
function watchStatements(table: LockTable, runner: QueryRunner): { readonly firstError: unknown; stop(): void } {
  const original = runner.query;
  const state: { firstError: unknown; ended: boolean } = { firstError: undefined, ended: false };
  runner.query = async function query(this: QueryRunner, ...args: Parameters<QueryRunner['query']>) {
    if (state.ended) {
      throw new Error(
        'drydock-slotlock: statement not sent: the server rolled back the transaction of this ' +
          'commitWithLocks unit at an earlier statement (a deadlock), and this one would commit on its own; ' +
          'the unit will be retried',
        { cause: state.firstError },
      );
    }
    try {
      return await original.apply(this, args);
    } catch (error) {
      state.firstError ??= error;
      if (table.dialect.endsTransaction(error)) state.ended = true;
      throw error;
    }
  } as QueryRunner['query'];
  return {
    get firstError() {
      return state.firstError;
    },
    stop() {
      runner.query = original;
    },
  };
}

/** What the service's own slot tries need: the table, its connection, the owner, the family and the retry settings. */
export interface ServiceSlotContext {
  readonly table: LockTable;
  readonly family: SlotFamily;
  readonly connection: ServiceConnection;
  readonly owner: string;
  readonly retry: Readonly<RetryOptions>;
  /** Who holds locks, read outside any unit right after a failure. */
  readonly readLockMap: (locks: readonly RequestedLock[]) => Promise<Record<string, string>>;
  /** Told of each contention retry, as acquisitions tell theirs. */
  readonly onRetry?: (error: unknown, attemptNumber: number) => void;
}

/**
 * `acquireSlot` where the service owns the statements (each in autocommit), retrying
 * contention as acquisitions do. One statement per try where the engine allows
 * (PostgreSQL, SQLite: an INSERT that takes the first free candidate itself); on MySQL a
 * plain read of the candidates, then a one-row INSERT of the first free one.
 */
export function serviceSlotTries(context: ServiceSlotContext): SlotTries {
  const { table, connection, owner, retry, family, onRetry } = context;
  const retried = <T>(attempt: (dataSource: DataSource) => Promise<T>): Promise<T> =>
    retryOnContention(
      retry,
      (error) => table.isContention(error),
      () => connection.exclusive(attempt),
      onRetry,
    );
  return {
    async takeFirstFree(candidates) {
      const statement = table.dialect.insertFirstFree?.(table.name, owner, candidates);
      if (statement !== undefined) {
        return tryFirstFreeStatement(candidates, () =>
          retried((dataSource) => queryThroughTypeorm(dataSource, statement.sql, [...statement.params])),
        );
      }
      const held = await retried((dataSource) => table.loadHeld(candidates, dataSource));
      const heldIndexes = new Set(held.map((lock) => lock.lockIndex));
      let statements = 0;
      let lost = false;
      for (const candidate of candidates) {
        if (heldIndexes.has(candidate.lockIndex)) continue;
        statements += 1;
        try {
          await retried((dataSource) => acquireInServiceTransaction(table, connection, dataSource, owner, [candidate]));
          return { taken: candidate, statements };
        } catch (error) {
          if (table.classify(error) !== 'conflict') throw error;
          lost = true; // taken since the read: the next free candidate
        }
      }
      // After a lost race the read is stale: the lock map is read again if one is needed.
      if (lost) return { statements, lost };
      return { statements, holders: Object.fromEntries(held.map((lock) => [lock.lockKey, lock.ownerPHID])) };
    },

    async freeSlotFrom(start) {
      const { sql, params } = table.dialect.selectFirstFreeSlot(table.name, family.prefix, family.limit, start);
      return freeSlotOf(firstRowOf(await retried((dataSource) => queryThroughTypeorm(dataSource, sql, [...params]))));
    },

    holders: context.readLockMap,
  };
}
