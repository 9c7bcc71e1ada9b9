import { changeThroughTypeorm } from '../../compat/typeorm-driver';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { driverCause, LocksHeldError } from '../../errors/classify-error';
import { SlotLockException, type SlotLockFailure } from '../../errors/slot-lock.exception';
import type { RequestedLock } from '../check-input';
import type { LockTable } from '../lock-table';
import { serializePerConnection } from '../serialize-per-connection';
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
 * Runs one call's statements on the caller's transaction, after any other call of the
 * service still in flight on it: several calls on one transaction (`Promise.all` over
 * one manager) would otherwise interleave their savepoints, and one call's rollback
 * would undo another's rows after that call had resolved.
 */
export function inCallerTransaction<T>(runner: QueryRunner, fn: () => Promise<T>): Promise<T> {
  return serializePerConnection(runner, fn);
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
  const statements = await table.insertStatements(runner, owner, locks);
  // One MySQL statement is atomic and a failed one leaves the transaction usable;
  // several statements, or an engine that aborts the whole transaction on an error
  // (PostgreSQL), need a savepoint to undo only what this call did.
  const savepoint =
    statements.length > 1 || table.dialect.abortsTransactionOnError
      ? `drydock_slotlock_${(savepointCount += 1)}`
      : undefined;
  try {
    if (savepoint !== undefined) await runner.query(`SAVEPOINT ${savepoint}`);
    await insertAll(runner, statements);
    if (savepoint !== undefined) await runner.query(`RELEASE SAVEPOINT ${savepoint}`);
    return undefined;
  } catch (error) {
    const kind = table.classify(error);
    if (kind === 'other') {
      if (savepoint !== undefined) await undoSavepoint(runner, savepoint);
      throw error;
    }
    const rolledBack = await table.dialect.rollsBackTransaction(error, runner);
    let lockMap: Record<string, string>;
    if (savepoint === undefined || rolledBack) {
      // No savepoint to protect the caller's transaction, but none needed: a failed
      // read leaves a MySQL transaction usable, and a rolled-back one is gone already.
      lockMap = await table.readLockMap(locks, runner);
    } else {
      // The read runs inside the savepoint, revived first if the error aborted it
      // (PostgreSQL): should the read fail too, undoing the savepoint still leaves the
      // caller's transaction as it was.
      if (!(error instanceof LocksHeldError)) await runner.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      lockMap = await table.readLockMap(locks, runner);
      await undoSavepoint(runner, savepoint);
    }
    return {
      failure: kind === 'conflict' ? 'held' : 'contention',
      transactionRolledBack: rolledBack,
      cause: driverCause(error),
      lockMap,
    };
  }
}

async function undoSavepoint(runner: QueryRunner, savepoint: string): Promise<void> {
  await runner.query(`ROLLBACK TO SAVEPOINT ${savepoint}`).catch(() => undefined);
  await runner.query(`RELEASE SAVEPOINT ${savepoint}`).catch(() => undefined);
}

/**
 * Takes the locks inside the caller's transaction: they commit or roll back with the
 * caller's own writes. No retry is possible here; a conflict or contention becomes a
 * SlotLockException at once, saying whether the server rolled the caller's transaction back.
 */
export function acquireInCallerTransaction(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  locks: readonly RequestedLock[],
  readElsewhere: ReadLockMap,
): Promise<void> {
  return inCallerTransaction(runner, async () => {
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
  return inCallerTransaction(runner, () => changeThroughTypeorm(runner, sql, [...params]));
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
