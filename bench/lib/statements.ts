/**
 * The SQL the raw-driver contenders send, written out by hand from what
 * src/dialects/*.ts build, and checked against them once at startup
 * (`assertSameStatements`): "raw driver sending the same statements" stays true if
 * a dialect changes, or the bench refuses to run.
 */
import type { SlotLockDialect } from '../../src/dialects/dialect';
import { mysqlDialect } from '../../src/dialects/mysql';
import { postgresDialect } from '../../src/dialects/postgres';
import { sqliteDialect } from '../../src/dialects/sqlite';
import type { HashedRow } from './callers';
import { TABLE } from './config';

export type Engine = 'mariadb' | 'postgres' | 'sqlite';

function repeatJoined(count: number, group: (i: number) => string): string {
  return Array.from({ length: count }, (_, i) => group(i)).join(', ');
}

/** The multi-row INSERT of `rows` rows the package sends on `engine`. */
export function insertSql(engine: Engine, rows: number): string {
  switch (engine) {
    case 'mariadb':
      return `INSERT INTO \`${TABLE}\` (ownerPHID, lockIndex, lockKey) VALUES ${repeatJoined(rows, () => '(?, ?, ?)')}`;
    case 'sqlite':
      return `INSERT INTO "${TABLE}" ("ownerPHID", "lockIndex", "lockKey") VALUES ${repeatJoined(rows, () => '(?, ?, ?)')}`;
    case 'postgres':
      // Inserts every row or none: a held lock makes the NOT EXISTS false (no error, no server log line).
      return (
        `INSERT INTO "${TABLE}" ("ownerPHID", "lockIndex", "lockKey") ` +
        `SELECT v.o, v.i, v.k FROM (VALUES ${repeatJoined(rows, (i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`)}) AS v(o, i, k) ` +
        `WHERE NOT EXISTS (SELECT 1 FROM "${TABLE}" WHERE "lockIndex" IN (${repeatJoined(rows, (i) => `$${3 * i + 2}`)}))`
      );
  }
}

/** The DELETE by owner the package sends to release. */
export function deleteSql(engine: Engine): string {
  switch (engine) {
    case 'mariadb':
      // Through key_owner whatever the optimizer's statistics say (see the MySQL dialect).
      return `DELETE \`${TABLE}\` FROM \`${TABLE}\` FORCE INDEX (\`key_owner\`) WHERE ownerPHID = ?`;
    case 'sqlite':
      return `DELETE FROM "${TABLE}" WHERE "ownerPHID" = ?`;
    case 'postgres':
      return (
        `DELETE FROM "${TABLE}" WHERE "ownerPHID" = $1 RETURNING CASE WHEN ` +
        `(SELECT pg_try_advisory_xact_lock(1359417347, (random() * 63)::int)) ` +
        `THEN NULL ELSE pg_notify('drydock_slotlock_released', '') END`
      );
  }
}

const DIALECTS: Record<Engine, SlotLockDialect> = {
  mariadb: mysqlDialect,
  postgres: postgresDialect,
  sqlite: sqliteDialect,
};

/** Throws unless the hand-written statements are the package's, for these rows. */
export function assertSameStatements(engine: Engine, rows: readonly HashedRow[]): void {
  const dialect = DIALECTS[engine];
  const insert = dialect.insertLocks(TABLE, rows[0]!.ownerPHID, rows);
  const release = dialect.deleteByOwner(TABLE, rows[0]!.ownerPHID);
  if (insert.sql !== insertSql(engine, rows.length)) {
    throw new Error(
      `${engine}: the raw INSERT differs from the package's:\n${insert.sql}\n${insertSql(engine, rows.length)}`,
    );
  }
  if (release.sql !== deleteSql(engine)) {
    throw new Error(`${engine}: the raw DELETE differs from the package's:\n${release.sql}\n${deleteSql(engine)}`);
  }
}
