import type { Pool, ResultSetHeader } from 'mysql2/promise';
import { hashedRows, mysqlRowParams } from '../callers';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';
import { isMysqlContention } from '../engines/mariadb';
import { retryAtOnce } from '../retry';
import { deleteSql, insertSql } from '../statements';

/*
 * Raw mysql2 (promise API) on its own pool. Both use `query` (client-side
 * interpolation, as TypeORM and the package do), hash and sort the keys per cycle (as
 * the package does) and take a pooled connection per statement or transaction.
 */

/** BEGIN, the INSERT, COMMIT on one pooled connection (what Phorge sends); ROLLBACK on failure. */
async function insertInTransaction(pool: Pool, sql: string, params: unknown[]): Promise<void> {
  const connection = await pool.getConnection();
  try {
    await connection.query('BEGIN');
    await connection.query(sql, params);
    await connection.query('COMMIT');
  } catch (error) {
    await connection.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    connection.release();
  }
}

/** raw tx: BEGIN, INSERT … VALUES (…), …, COMMIT; then DELETE by owner. */
export function mysqlRawTransactionContender(pool: Pool): CycleContender {
  const contention: ContentionCount = { errors: 0 };
  const release = deleteSql('mariadb');
  return {
    label: 'raw tx',
    contention,
    cycle: async (caller) => {
      const rows = hashedRows(caller);
      const sql = insertSql('mariadb', rows.length);
      const params = mysqlRowParams(rows);
      await retryAtOnce(contention, isMysqlContention, () => insertInTransaction(pool, sql, params));
      await retryAtOnce(contention, isMysqlContention, () => pool.query(release, [Buffer.from(caller.owner)]));
    },
  };
}

/** raw autocommit: the package's own statements, the INSERT then the DELETE, each in autocommit. */
export function mysqlRawAutocommitContender(pool: Pool, label = 'raw autocommit'): CycleContender {
  const contention: ContentionCount = { errors: 0 };
  const release = deleteSql('mariadb');
  return {
    label,
    contention,
    cycle: async (caller) => {
      const rows = hashedRows(caller);
      const sql = insertSql('mariadb', rows.length);
      const params = mysqlRowParams(rows);
      const [result] = await retryAtOnce(contention, isMysqlContention, () => pool.query<ResultSetHeader>(sql, params));
      if (result.affectedRows !== rows.length) throw new Error(`inserted ${result.affectedRows} of ${rows.length}`);
      await retryAtOnce(contention, isMysqlContention, () => pool.query(release, [Buffer.from(caller.owner)]));
    },
  };
}
