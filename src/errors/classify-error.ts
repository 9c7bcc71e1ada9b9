import type { DriverErrorKind, SlotLockDialect } from '../dialects/dialect';

/**
 * A lock was found held without a driver error: the engine's INSERT inserted fewer
 * rows than asked (PostgreSQL's `WHERE NOT EXISTS` insert, which keeps conflicts out
 * of the server log). Internal: callers see a SlotLockException.
 */
export class LocksHeldError extends Error {
  override readonly name = 'LocksHeldError';
  constructor() {
    super('a requested lock is held');
  }
}

/**
 * The one place that decides what an error means for a lock: the dialect knows its
 * engine's codes (1062/1213/1205, 23505/40P01/40001, SQLITE_CONSTRAINT/SQLITE_BUSY);
 * a quiet conflict is always a conflict.
 */
export function classifyError(dialect: SlotLockDialect, error: unknown): DriverErrorKind {
  if (error instanceof LocksHeldError) return 'conflict';
  return dialect.classify(error);
}

/** The driver error behind a conflict, if the engine reported one (PostgreSQL's quiet insert does not). */
export function driverCause(error: unknown): unknown {
  return error instanceof LocksHeldError ? undefined : error;
}
