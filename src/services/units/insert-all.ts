import { changeThroughTypeorm } from '../../compat/typeorm-driver';
import type { QueryRunner } from 'typeorm';
import type { InsertStatement } from '../../dialects/dialect';
import { LocksHeldError } from '../../errors/classify-error';

/**
 * Runs insert statements in order on one runner; fewer rows than asked means a lock is
 * held (PostgreSQL's quiet conflict), reported as {@link LocksHeldError}.
 */
export async function insertAll(runner: QueryRunner, statements: readonly InsertStatement[]): Promise<void> {
  for (const statement of statements) {
    const inserted = await changeThroughTypeorm(runner, statement.sql, [...statement.params]);
    if (inserted < statement.rowCount) throw new LocksHeldError();
  }
}
