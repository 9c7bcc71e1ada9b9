import type { Pool } from 'pg';
import { hashedRows, rowParams } from '../callers';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';
import { isPostgresContention } from '../engines/postgres';
import { retryAtOnce } from '../retry';
import { deleteSql, insertSql } from '../statements';

/**
 * Raw `pg`: the package's statements on a `pg.Pool` of its own, `pool.query` (one
 * pooled client per statement, extended protocol with bound parameters, as TypeORM
 * sends them): INSERT … SELECT … WHERE NOT EXISTS in autocommit, checking that every
 * row went in, then DELETE by owner.
 */
export function postgresRawContender(pool: Pool): CycleContender {
  const contention: ContentionCount = { errors: 0 };
  const release = deleteSql('postgres');
  return {
    label: 'raw pg',
    contention,
    cycle: async (caller) => {
      const rows = hashedRows(caller);
      const sql = insertSql('postgres', rows.length);
      const params = rowParams(rows);
      const result = await retryAtOnce(contention, isPostgresContention, () => pool.query(sql, params));
      if (result.rowCount !== rows.length) throw new Error(`inserted ${result.rowCount} of ${rows.length}`);
      await retryAtOnce(contention, isPostgresContention, () => pool.query(release, [caller.owner]));
    },
  };
}
