import type { DrydockSlotLock } from '../../index';
import { formatTable } from '../format-table';

/** Prints locks for `locks` and `held`: an aligned table, or JSON with `--json`; `none` when there are none. */
export function printLocks(locks: readonly DrydockSlotLock[], json: boolean, none: string): void {
  const rows = locks.map((lock) => ({ key: lock.lockKey, owner: lock.ownerPHID, index: lock.lockIndex }));
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else if (rows.length === 0) {
    process.stdout.write(`${none}\n`);
  } else {
    process.stdout.write(
      formatTable(
        ['key', 'owner', 'index'],
        rows.map((row) => [row.key, row.owner, row.index]),
      ),
    );
  }
}
