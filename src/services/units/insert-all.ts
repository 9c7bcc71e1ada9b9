import type { QueryRunner } from 'typeorm';
import { changeThroughTypeorm } from '../../compat/typeorm-driver';
import type { InsertStatement } from '../../dialects/dialect';
import { LocksHeldError } from '../../errors/classify-error';

/**
 * Runs one insert statement on a runner; fewer rows than asked means a lock is held
 * (PostgreSQL's quiet conflict, which inserts none), reported as {@link LocksHeldError}.
 */
export async function insertOne(runner: QueryRunner, statement: InsertStatement): Promise<void> {
  const inserted = await changeThroughTypeorm(runner, statement.sql, [...statement.params]);
  if (inserted < statement.rowCount) throw new LocksHeldError();
}

/** Runs insert statements in order on one runner (see {@link insertOne}). */
export async function insertAll(runner: QueryRunner, statements: readonly InsertStatement[]): Promise<void> {
  for (const statement of statements) await insertOne(runner, statement);
}
