import type { EntityManager, QueryRunner } from 'typeorm';
import { driverCause } from '../../errors/classify-error';
import { SlotLockException } from '../../errors/slot-lock.exception';
import type { RequestedLock } from '../check-input';
import type { LockTable } from '../lock-table';
import { insertAll } from './insert-all';

/** Name of the savepoint that keeps a chunked acquisition in a caller's transaction all-or-nothing. */
const SAVEPOINT = 'drydock_slotlock_acquire';

/** How long a conflict inside a caller's transaction waits for a connection to read its lock map. */
const LOCK_MAP_WAIT_MS = 2000;

/**
 * The `manager` of a call, checked: it must belong to a transaction the caller started.
 * Returns its query runner, or undefined when the call has no manager.
 */
export function callerRunnerOf(manager: EntityManager | undefined): QueryRunner | undefined {
  if (manager === undefined) return undefined;
  const runner = (manager as Partial<EntityManager> | null)?.queryRunner;
  if (runner === undefined || !runner.isTransactionActive) {
    throw new TypeError(
      'options.manager must be the EntityManager of a transaction you started ' +
        '(dataSource.transaction(manager => ...)); leave it out to let the service run its own',
    );
  }
  return runner;
}

/**
 * Takes the locks inside the caller's transaction: they commit or roll back with the
 * caller's own writes. No retry is possible here; a conflict or contention becomes a
 * SlotLockException at once, saying whether the server rolled the caller's transaction back.
 */
export async function acquireInCallerTransaction(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
  locks: readonly RequestedLock[],
): Promise<void> {
  const statements = await table.insertStatements(runner, owner, locks);
  // One MySQL statement is atomic and a failed one leaves the transaction usable;
  // several statements, or an engine that aborts the whole transaction on an error
  // (PostgreSQL), need a savepoint to undo only what this call did.
  const useSavepoint = statements.length > 1 || table.dialect.abortsTransactionOnError;
  try {
    if (useSavepoint) await runner.query(`SAVEPOINT ${SAVEPOINT}`);
    await insertAll(runner, statements);
    if (useSavepoint) await runner.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
  } catch (error) {
    const kind = table.classify(error);
    const rolledBack = kind === 'other' ? false : await table.dialect.rollsBackTransaction(error, runner);
    if (useSavepoint && !rolledBack) {
      await runner.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
      await runner.query(`RELEASE SAVEPOINT ${SAVEPOINT}`).catch(() => undefined);
    }
    if (kind === 'other') throw error;
    throw new SlotLockException({
      failure: kind === 'conflict' ? 'held' : 'contention',
      lockMap: await readLockMapBesides(table, locks),
      transactionRolledBack: rolledBack,
      cause: driverCause(error),
    });
  }
}

/** Deletes the owner's locks inside the caller's transaction; resolves to how many. */
export async function releaseInCallerTransaction(
  table: LockTable,
  runner: QueryRunner,
  owner: string,
): Promise<number> {
  const { sql, params } = table.deleteByOwner(owner);
  return (await runner.query(sql, [...params], true)).affected ?? 0;
}

/**
 * The lock map for a conflict inside a caller's transaction, read on another
 * connection: the caller's REPEATABLE READ snapshot could hide the holder's row. The
 * caller keeps its connection meanwhile, so the wait for a second one is bounded: with
 * every pooled connection held by such callers, the map comes back empty instead.
 */
function readLockMapBesides(table: LockTable, locks: readonly RequestedLock[]): Promise<Record<string, string>> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<Record<string, string>>((resolve) => {
    timer = setTimeout(() => resolve({}), LOCK_MAP_WAIT_MS);
    timer.unref();
  });
  return Promise.race([table.readLockMap(locks), giveUp]).finally(() => clearTimeout(timer));
}
