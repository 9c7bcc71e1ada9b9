import type { Pool, RowDataPacket } from 'mysql2/promise';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';

/** A named lock was held by another session: the set was not taken (and what was got is released). */
export class NamedLockHeld extends Error {
  override readonly name = 'NamedLockHeld';
  constructor(readonly lockName: string) {
    super(`named lock ${JSON.stringify(lockName)} is held by another session`);
  }
}

/**
 * MySQL/MariaDB named locks on one pooled connection, pinned for as long as the locks
 * are held (they belong to the session): `SELECT GET_LOCK(name, 0)` per key, one round
 * trip each, in the caller's order; a refused one releases what was got with
 * `RELEASE_ALL_LOCKS()` (MariaDB 10.0.2+, MySQL 5.7+) and fails. Released with
 * `RELEASE_ALL_LOCKS()`.
 */
export function namedLocksContender(pool: Pool): CycleContender {
  return {
    label: 'named locks',
    contention: { errors: 0 } satisfies ContentionCount,
    cycle: async (caller) => {
      const connection = await pool.getConnection();
      try {
        for (const name of caller.keys) {
          const [rows] = await connection.query<RowDataPacket[]>('SELECT GET_LOCK(?, 0) AS got', [name]);
          if (Number(rows[0]?.['got']) !== 1) {
            await connection.query('SELECT RELEASE_ALL_LOCKS()');
            throw new NamedLockHeld(name);
          }
        }
        // The critical section would run here, on this same connection.
        await connection.query('SELECT RELEASE_ALL_LOCKS()');
      } finally {
        connection.release();
      }
    },
  };
}
