import type { DataSource } from 'typeorm';
import { CreateDrydockSlotLock1442836800000 } from '../migrations';
import { CliError } from './cli-error';

/** The table the package's migration creates (Phorge's name for it). */
const LOCK_TABLE = 'drydock_slotlock';

/** The name TypeORM records when the package's migration has run. */
const LOCK_TABLE_MIGRATION = new CreateDrydockSlotLock1442836800000().name;

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
 * Refuses, with a {@link CliError} and before TypeORM creates anything (its `migrations`
 * table included), to migrate a database whose `drydock_slotlock` exists without TypeORM's
 * record of the migration that creates it. Run it where migrations are serialized
 * (`migrateExclusively`): a concurrent `slotlock migrate` between its CREATE TABLE and its
 * record would otherwise look the same.
 */
export async function refuseUnrecordedLockTable(dataSource: DataSource, where: string): Promise<void> {
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable(LOCK_TABLE))) return;
    const migrationsTable = dataSource.options.migrationsTableName ?? 'migrations';
    if (await runner.hasTable(migrationsTable)) {
      const placeholder = dataSource.options.type === 'postgres' ? '$1' : '?';
      const recorded = (await runner.query(
        `SELECT 1 FROM ${dataSource.driver.escape(migrationsTable)} WHERE name = ${placeholder}`,
        [LOCK_TABLE_MIGRATION],
      )) as unknown[];
      if (recorded.length > 0) return;
    }
    const [row] = (await runner.query(
      `SELECT COUNT(*) AS locks FROM ${dataSource.driver.escape(LOCK_TABLE)}`,
    )) as Array<{
      locks: number | string;
    }>;
    throw new CliError(unrecordedLockTableMessage(where, Number(row?.locks)));
  } finally {
    await runner.release();
  }
}
