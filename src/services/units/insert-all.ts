import type { QueryRunner } from 'typeorm';
import { changeThroughTypeorm } from '../../compat/typeorm-driver';
import type { InsertStatement } from '../../dialects/dialect';
import { LocksHeldError } from '../../errors/classify-error';
import type { InsertPlan, LockTable } from '../lock-table';

/**
 * Runs one insert statement on a runner; fewer rows than asked means a lock is held
 * (PostgreSQL's quiet conflict, which inserts none), reported as {@link LocksHeldError}.
 */
export async function insertOne(runner: QueryRunner, statement: InsertStatement): Promise<void> {
  const inserted = await changeThroughTypeorm(runner, statement.sql, [...statement.params]);
  if (inserted < statement.rowCount) throw new LocksHeldError();
}

/** How far {@link insertAll} got: the locks of the plan inserted so far (its first `rows`). */
export interface InsertProgress {
  rows: number;
}

/**
 * Runs a plan's statements in order on one runner (see {@link insertOne}), each built
 * just before it is sent and dropped once it has run: one statement's text in memory
 * at a time. `progress` says how many of the plan's locks were inserted when it fails.
 */
export async function insertAll(
  runner: QueryRunner,
  table: LockTable,
  plan: InsertPlan,
  progress: InsertProgress = { rows: 0 },
): Promise<void> {
  for (let chunk = 0; chunk < plan.ends.length; chunk += 1) {
    await insertOne(runner, table.insertStatement(plan, chunk));
    progress.rows = plan.ends[chunk]!;
  }
}
