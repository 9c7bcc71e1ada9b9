import type { DataSource } from 'typeorm';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';
import { CreateDrydockSlotLock1442836800000, CreateDrydockSlotLockSession1796083200000 } from '../migrations';
import { CliError } from './cli-error';

/** The table the package's first migration creates (Phorge's name for it). */
const LOCK_TABLE = PHORGE_TABLE_NAME;

/** The sessions' table, which the package's second migration (CreateDrydockSlotLockSession) creates. */
export const SESSION_TABLE = 'drydock_slotlock_session';

/** A table a package migration creates, the name TypeORM records once it has, and what to say when it has not. */
interface MigratedTable {
  readonly table: string;
  readonly migration: string;
  readonly message: (where: string, rows?: number) => string;
}

/**
 * What to do when `drydock_slotlock` exists but TypeORM has no record of the migration
 * that creates it. Two cases look the same and only the user can tell them apart (the
 * table is never adopted automatically): a Phorge database, whose table is Phorge's own,
 * or a `slotlock migrate` cut off between CREATE TABLE (which MySQL commits at once) and
 * TypeORM's record of it. `where` is the URL, password hidden; `locks` how many rows the
 * table holds, when known.
 */
export function unrecordedLockTableMessage(where: string, locks?: number): string {
  const holding = locks === undefined ? '' : ` (it holds ${locks} lock${locks === 1 ? '' : 's'})`;
  return (
    `${LOCK_TABLE} exists on ${where}${holding} but TypeORM has no record of creating it: ` +
    "if it is Phorge's table, use the database as it is, without `slotlock migrate`; " +
    'if an earlier `slotlock migrate` was interrupted after creating it and it is empty, ' +
    `drop it (DROP TABLE ${LOCK_TABLE}) and run \`slotlock migrate\` again`
  );
}

/**
 * The same for the session table. Phorge has none, so it comes from a `slotlock migrate`
 * cut off after creating it (or an app's own migrations, recorded in another table).
 */
export function unrecordedSessionTableMessage(where: string, sessions?: number): string {
  const holding = sessions === undefined ? '' : ` (it holds ${sessions} session${sessions === 1 ? '' : 's'})`;
  return (
    `${SESSION_TABLE} exists on ${where}${holding} but TypeORM has no record of creating it: ` +
    'if an earlier `slotlock migrate` was interrupted after creating it, ' +
    `drop it (DROP TABLE ${SESSION_TABLE}) and run \`slotlock migrate\` again`
  );
}

/** The message for a CREATE TABLE the server refused since the table exists (`text`: the server's words). */
export function existingTableMessage(text: string, where: string): string | undefined {
  if (text.includes(SESSION_TABLE)) return unrecordedSessionTableMessage(where);
  if (text.includes(LOCK_TABLE)) return unrecordedLockTableMessage(where);
  return undefined;
}

/** The package's tables, in the order of their migrations. */
const MIGRATED_TABLES: readonly MigratedTable[] = [
  { table: LOCK_TABLE, migration: new CreateDrydockSlotLock1442836800000().name, message: unrecordedLockTableMessage },
  {
    table: SESSION_TABLE,
    migration: new CreateDrydockSlotLockSession1796083200000().name,
    message: unrecordedSessionTableMessage,
  },
];

/**
 * Refuses, with a {@link CliError} and before TypeORM creates anything (its `migrations`
 * table included), to migrate a database where a table of the package's migrations
 * (`drydock_slotlock`, then `drydock_slotlock_session`) exists without TypeORM's record of
 * the migration that creates it. Run it where migrations are serialized
 * (`migrateExclusively`): a concurrent `slotlock migrate` between its CREATE TABLE and its
 * record would otherwise look the same.
 */
export async function refuseUnrecordedLockTable(dataSource: DataSource, where: string): Promise<void> {
  const runner = dataSource.createQueryRunner();
  try {
    const migrationsTable = dataSource.options.migrationsTableName ?? 'migrations';
    const hasMigrationsTable = await runner.hasTable(migrationsTable);
    for (const { table, migration, message } of MIGRATED_TABLES) {
      if (!(await runner.hasTable(table))) continue;
      if (hasMigrationsTable) {
        const placeholder = dataSource.options.type === 'postgres' ? '$1' : '?';
        const recorded = (await runner.query(
          `SELECT 1 FROM ${dataSource.driver.escape(migrationsTable)} WHERE name = ${placeholder}`,
          [migration],
        )) as unknown[];
        if (recorded.length > 0) continue;
      }
      const [row] = (await runner.query(`SELECT COUNT(*) AS count FROM ${dataSource.driver.escape(table)}`)) as Array<{
        count: number | string;
      }>;
      throw new CliError(message(where, Number(row?.count)));
    }
  } finally {
    await runner.release();
  }
}
