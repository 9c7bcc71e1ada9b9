import type { DataSource, QueryRunner } from 'typeorm';
import { digestForIndex } from '../../src';

/** InnoDB's count of deadlocks since the server started. */
export async function deadlockCount(dataSource: DataSource): Promise<number> {
  const [row] = (await dataSource.query("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")) as Array<{ Value: string }>;
  return Number(row!.Value);
}

/**
 * Resolves once an INSERT whose text contains `needle` (as text, or as the hex literal
 * the service sends owners and keys as) has been running for a while, i.e. waits for a
 * row lock. (PROCESSLIST, not INNODB_TRX: InnoDB refreshes that view lazily and may
 * show a wait that has already ended.)
 */
export async function waitForBlockedInsert(dataSource: DataSource, needle: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let seenBefore = false;
  while (Date.now() < deadline) {
    const rows = (await dataSource.query(
      "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND DB = DATABASE() AND INFO LIKE 'INSERT%' " +
        'AND (INSTR(INFO, ?) > 0 OR INSTR(INFO, ?) > 0)',
      [needle, Buffer.from(needle).toString('hex')],
    )) as unknown[];
    if (rows.length > 0 && seenBefore) return;
    seenBefore = rows.length > 0;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no INSERT containing ${JSON.stringify(needle)} started waiting for a lock`);
}

/** Two keys, returned so that the first sorts before the second by lock index. */
export function keysInIndexOrder(a: string, b: string): [string, string] {
  return digestForIndex(a) < digestForIndex(b) ? [a, b] : [b, a];
}

/**
 * A transaction on its own connection that has written many rows, so that InnoDB,
 * which rolls back the transaction that changed fewer rows, picks the other side of
 * a deadlock as its victim.
 */
export async function heavyTransaction(dataSource: DataSource, owner: string, keys: string[]): Promise<QueryRunner> {
  const runner = dataSource.createQueryRunner();
  await runner.startTransaction();
  const fillers = Array.from({ length: 50 }, (_, i) => `filler(${owner},${i})`);
  for (const key of [...fillers, ...keys]) {
    await runner.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
      owner,
      digestForIndex(key),
      key,
    ]);
  }
  return runner;
}

/** Rolls back and releases a runner made by {@link heavyTransaction}. */
export async function endTransaction(runner: QueryRunner): Promise<void> {
  if (runner.isTransactionActive) await runner.rollbackTransaction();
  await runner.release();
}
