import { changeThroughTypeorm, queryThroughTypeorm } from '../../compat/typeorm-driver';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { driverCause, LocksHeldError } from '../../errors/classify-error';
import { SlotLockException, type SlotLockFailure } from '../../errors/slot-lock.exception';
import type { RequestedLock } from '../check-input';
import type { LockTable } from '../lock-table';
import { serializePerConnection } from '../serialize-per-connection';
import { firstRowOf, freeSlotOf, tryFirstFreeStatement, type SlotFamily, type SlotTries } from '../slots/take-slot';
import { insertAll } from './insert-all';

/**
 * How long a conflict inside a caller's transaction waits for a second pooled
 * connection to read holders its own snapshot may hide. The caller keeps its connection
 * meanwhile: with every pooled connection held by such callers (a pool of one, say) the
 * map comes back without them instead of waiting for ever.
 */
const LOCK_MAP_WAIT_MS = 500;

/** Savepoint names are unique per call, so that no call can roll back to another's. */
let savepointCount = 0;

/**
 * The query runner of a call's `manager`, checked: it must belong to a transaction the
 * caller started on one of `dataSources` (the service's). Undefined when the call has
 * no manager.
 */
export function callerRunnerOf(
  manager: EntityManager | undefined,
  dataSources: readonly DataSource[],
): QueryRunner | undefined {
  if (manager === undefined) return undefined;
  const runner = (manager as Partial<EntityManager> | null)?.queryRunner;
  if (runner === undefined || !runner.isTransactionActive) {
    throw new TypeError(
      'options.manager must be the EntityManager of a transaction you started ' +
        '(dataSource.transaction(manager => ...)); leave it out to let the service run its own',
    );
  }
  // A manager of another DataSource would write the locks into a database this service never reads.
  if (!dataSources.includes(manager.connection)) {
    throw new TypeError(
      "options.manager belongs to another DataSource than the service's: pass a manager of a transaction " +
        'on the DataSource the SlotLockService was made with, or use a service made with that DataSource',
    );
  }
  return runner;
}

/**
 * Transactions the server rolled back under one of the service's calls (a MySQL
 * deadlock). The session is then in autocommit: a later call's statements would commit
 * at once, outside the transaction the caller thinks it is in, and no rollback of the
 * caller's could undo them. So later calls on it are refused until a new transaction
 * is open on the runner.
 */
const rolledBackUnder = new WeakSet<QueryRunner>();

/**
 * Runs one call's statements on the caller's transaction, after any other call of the
 * service still in flight on it: several calls on one transaction (`Promise.all` over
 * one manager) would otherwise interleave, and one call's undoing could reach another's
 * rows after that call had resolved. `refusal` is what to throw when the server has
 * rolled the transaction back under an earlier call.
 */
export function inCallerTransaction<T>(
  table: LockTable,
  runner: QueryRunner,
  refusal: () => Error,
  fn: () => Promise<T>,
): Promise<T> {
  return serializePerConnection(runner, async () => {
    if (rolledBackUnder.has(runner)) {
      if (!(await table.dialect.transactionIsOpen(runner))) throw refusal();
      rolledBackUnder.delete(runner); // the caller has begun a new transaction on this runner
    }
    try {
      return await fn();
    } catch (error) {
      const rolledBack =
        error instanceof SlotLockException
          ? error.transactionRolledBack
          : table.classify(error) === 'contention' && (await table.dialect.rollsBackTransaction(error, runner));
      if (rolledBack) rolledBackUnder.add(runner);
      throw error;
    }
  });
}

/** The SlotLockException of an acquisition on a transaction the server has rolled back already. */
export function transactionGone(): SlotLockException {
  return new SlotLockException({ failure: 'contention', lockMap: {}, transactionRolledBack: true });
}

/** What a failed insert inside a caller's transaction means. */
export interface CallerInsertFailure {
  readonly failure: SlotLockFailure;
  /** True when the server rolled back the caller's whole transaction (a MySQL deadlock). */
  readonly transactionRolledBack: boolean;
  readonly cause: unknown;
  /** The holders seen on the caller's own connection (its snapshot may hide some). */
  readonly lockMap: Record<string, string>;
}

/**
 * Inserts the locks inside the caller's transaction, all or none: resolves to undefined
 * when every lock was taken, to what went wrong when a lock was held or contention
 * stopped it (nothing of this call is left), and throws any other error unchanged.
 * Call it inside {@link inCallerTransaction}.
 */
export async function tryInsertInCallerTransaction(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  locks: readonly RequestedLock[],
): Promise<CallerInsertFailure | undefined> {
  const plan = await table.planInserts(runner, owner, locks);
  // PostgreSQL aborts the caller's whole transaction on any failed statement: only a
  // savepoint keeps it usable. MySQL and SQLite undo just the failed statement.
  const savepoint = table.dialect.abortsTransactionOnError ? `drydock_slotlock_${(savepointCount += 1)}` : undefined;
  const inserted = { rows: 0 };
  try {
    if (savepoint !== undefined) await runner.query(`SAVEPOINT ${savepoint}`);
    await insertAll(runner, table, plan, inserted);
    if (savepoint !== undefined) await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    return undefined;
  } catch (error) {
    const kind = table.classify(error);
    const rolledBack = kind !== 'other' && (await table.dialect.rollsBackTransaction(error, runner));
    let lockMap: Record<string, string> = {};
    if (rolledBack) {
      // The server rolled back the caller's whole transaction: nothing is left to undo.
      lockMap = await table.readLockMap(locks, runner);
    } else if (savepoint !== undefined && !(error instanceof LocksHeldError)) {
      // The error aborted the transaction (PostgreSQL): only rolling back to the savepoint
      // revives it. That undoes this call's rows, and also whatever the caller ran on the
      // same transaction meanwhile (README: await a call before using its transaction).
      await runner.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      if (kind !== 'other') lockMap = await readInsideSavepoint(table, runner, locks, savepoint);
      await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    } else {
      // The failed statement left nothing (it is atomic; a quiet conflict inserted no row):
      // delete exactly what this call's earlier statements inserted, and nothing else.
      const undone = table.deleteInserted(runner, owner, locks, inserted.rows);
      // After an unexpected error (a lost connection) the caller gets that error, not the undo's.
      await (kind === 'other' ? undone.catch(() => undefined) : undone);
      if (kind !== 'other') {
        lockMap =
          savepoint === undefined
            ? await table.readLockMap(locks, runner)
            : await readInsideSavepoint(table, runner, locks, savepoint);
      }
      if (savepoint !== undefined) await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    }
    if (kind === 'other') throw error;
    return {
      failure: kind === 'conflict' ? 'held' : 'contention',
      transactionRolledBack: rolledBack,
      cause: driverCause(error),
      lockMap,
    };
  }
}

/**
 * Reads the holders inside the call's savepoint on PostgreSQL: should the read fail (a
 * statement timeout, say), rolling back to the savepoint keeps the caller's
 * transaction usable, and the map comes back empty.
 */
async function readInsideSavepoint(
  table: LockTable,
  runner: QueryRunner,
  locks: readonly RequestedLock[],
  savepoint: string,
): Promise<Record<string, string>> {
  try {
    const held = await table.loadHeld(locks, runner);
    return Object.fromEntries(held.map((lock) => [lock.lockKey, lock.ownerPHID]));
  } catch {
    await runner.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
    return {};
  }
}

/**
 * Takes the locks inside the caller's transaction: they commit or roll back with the
 * caller's own writes. No retry is possible here; a conflict or contention becomes a
 * SlotLockException at once, saying whether the server rolled the caller's transaction back.
 * `before` runs first, in the same turn (a session's check that it still lives).
 */
export function acquireInCallerTransaction(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  locks: readonly RequestedLock[],
  readElsewhere: ReadLockMap,
  before?: () => Promise<void>,
): Promise<void> {
  return inCallerTransaction(table, runner, transactionGone, async () => {
    await before?.();
    const failed = await tryInsertInCallerTransaction(table, runner, owner, locks);
    if (failed === undefined) return;
    throw new SlotLockException({ ...failed, lockMap: await completeLockMap(locks, failed.lockMap, readElsewhere) });
  });
}

/** Reads who holds `locks` outside the caller's transaction (on a pooled connection, or the service's own). */
export type ReadLockMap = (locks: readonly RequestedLock[]) => Promise<Record<string, string>>;

/** Deletes the owner's locks inside the caller's transaction; resolves to how many. */
export function releaseInCallerTransaction(table: LockTable, runner: QueryRunner, owner: string): Promise<number> {
  const { sql, params } = table.deleteByOwner(owner);
  return inCallerTransaction(table, runner, releaseRefused, () => changeThroughTypeorm(runner, sql, [...params]));
}

/** Why a release inside a transaction the server rolled back is not sent (it would run in autocommit). */
function releaseRefused(): Error {
  return new Error(
    'drydock-slotlock: releaseLocks({ manager }) not sent: the server rolled back that transaction under an ' +
      'earlier call (a deadlock), and the release would now run outside it; start a new transaction',
  );
}

/**
 * The holders of a failure inside the caller's transaction: those its own connection
 * saw, or, when it saw none (a REPEATABLE READ snapshot older than the holder's commit
 * hides the row), those a pooled connection sees within {@link LOCK_MAP_WAIT_MS}.
 */
export function completeLockMap(
  locks: readonly RequestedLock[],
  seen: Record<string, string>,
  readElsewhere: ReadLockMap,
): Promise<Record<string, string>> {
  if (Object.keys(seen).length > 0) return Promise.resolve(seen);
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<Record<string, string>>((resolve) => {
    timer = setTimeout(() => resolve({}), LOCK_MAP_WAIT_MS);
    timer.unref();
  });
  return Promise.race([readElsewhere(locks), giveUp]).finally(() => clearTimeout(timer));
}

/**
 * `acquireSlot` inside the caller's transaction: everything on the caller's own
 * connection (a second pooled one may never come: a pool of one, or every connection
 * held by such callers), nothing retried, each try all or nothing. Call it inside
 * {@link inCallerTransaction}.
 */
export function callerSlotTries(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  family: SlotFamily,
  readElsewhere: ReadLockMap,
): SlotTries {
  return {
    async takeFirstFree(candidates) {
      const statement = table.dialect.insertFirstFree?.(table.name, owner, candidates);
      if (statement !== undefined) {
        return tryFirstFreeStatement(candidates, () =>
          guarded(table, runner, () => queryThroughTypeorm(runner, statement.sql, [...statement.params])),
        );
      }
      const held = await table.loadHeld(candidates, runner);
      const heldIndexes = new Set(held.map((lock) => lock.lockIndex));
      const holders: Record<string, string> = Object.fromEntries(held.map((lock) => [lock.lockKey, lock.ownerPHID]));
      let statements = 0;
      let lost = false;
      for (const candidate of candidates) {
        if (heldIndexes.has(candidate.lockIndex)) continue;
        statements += 1;
        const failed = await tryInsertInCallerTransaction(table, runner, owner, [candidate]);
        if (failed === undefined) return { taken: candidate, statements };
        Object.assign(holders, failed.lockMap);
        if (failed.failure !== 'held' || failed.transactionRolledBack) {
          throw new SlotLockException({ ...failed, lockMap: holders, attempts: statements });
        }
        lost = true;
      }
      return { statements, holders, lost };
    },

    async freeSlotFrom(start) {
      const { sql, params } = table.dialect.selectFirstFreeSlot(table.name, family.prefix, family.limit, start);
      return freeSlotOf(firstRowOf(await guarded(table, runner, () => queryThroughTypeorm(runner, sql, [...params]))));
    },

    async holders(locks) {
      return completeLockMap(locks, await table.readLockMap(locks, runner), readElsewhere);
    },
  };
}

/**
 * Runs one statement of the service on the caller's transaction so that its failure
 * leaves the transaction as it was where the engine allows: inside a savepoint on
 * PostgreSQL (whose failed statement would abort the whole transaction). Contention
 * becomes a SlotLockException saying whether the server rolled the caller's transaction
 * back; any other error passes through.
 */
export async function guarded<T>(table: LockTable, runner: QueryRunner, statement: () => Promise<T>): Promise<T> {
  const savepoint = table.dialect.abortsTransactionOnError ? `drydock_slotlock_${(savepointCount += 1)}` : undefined;
  if (savepoint !== undefined) await runner.query(`SAVEPOINT ${savepoint}`);
  try {
    const result = await statement();
    if (savepoint !== undefined) await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    return result;
  } catch (error) {
    const kind = table.classify(error);
    const rolledBack = kind !== 'other' && (await table.dialect.rollsBackTransaction(error, runner));
    if (savepoint !== undefined && !rolledBack) {
      await runner.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    }
    if (kind === 'other') throw error;
    throw new SlotLockException({
      failure: kind === 'conflict' ? 'held' : 'contention',
      lockMap: {},
      transactionRolledBack: rolledBack,
      cause: driverCause(error),
    });
  }
}
