import type Database from 'better-sqlite3';
import { hashedRows, rowParams } from '../callers';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';
import { deleteSql, insertSql } from '../statements';

/**
 * Raw `better-sqlite3`: the package's statements on one connection of its own,
 * prepared once per SQL text and cached (as TypeORM's runner caches them). The driver
 * is synchronous, so C callers are C async loops in one process taking turns on the
 * one connection, as the package's callers take turns on its DataSource.
 *
 * Each cycle yields between its INSERT and its DELETE, as a caller that holds its locks
 * for any time does, and as the package's callers do (acquireLocks resolves before
 * releaseLocks is called): with C callers the statements reach SQLite interleaved the
 * same way on both sides (C INSERTs, then their DELETEs), and the table holds the same
 * number of rows. Without the yield a raw cycle deleted its rows before the next caller
 * inserted, so at C=8 the raw side ran on a table of 10 rows where the package's held up
 * to 80, and each statement cost SQLite about 10 % less CPU (measured: 84 against 95 µs
 * per cycle at K=10) for a reason that was not the package's.
 */
export function sqliteRawContender(db: Database.Database): CycleContender {
  const contention: ContentionCount = { errors: 0 };
  const statements = new Map<string, Database.Statement>();
  const prepared = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  const release = deleteSql('sqlite');
  return {
    label: 'raw better-sqlite3',
    contention,
    // async, so that every cycle yields to the other callers as the package's do.
    cycle: async (caller) => {
      const rows = hashedRows(caller);
      const inserted = prepared(insertSql('sqlite', rows.length)).run(...rowParams(rows)).changes;
      if (inserted !== rows.length) throw new Error(`inserted ${inserted} of ${rows.length}`);
      await Promise.resolve(); // the other callers' turn, as between the package's acquire and release
      prepared(release).run(caller.owner);
    },
  };
}
