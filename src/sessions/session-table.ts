import type { DataSource, QueryRunner } from 'typeorm';
import { changeThroughTypeorm, queryThroughTypeorm } from '../compat/typeorm-driver';
import type { SessionSql } from '../dialects/session-sql';
import type { SqlStatement } from '../dialects/dialect';
import type { LockTable } from '../services/lock-table';

/**
 * How long after its last heartbeat a session's row may be reaped, beyond its TTL: room
 * for the clocks of a cluster's nodes to differ (each node judges by its own), and for a
 * heartbeat in flight. Never more than a third of the TTL, so that a dead session's locks
 * are free within its TTL and one heartbeat.
 */
export function reapMarginMs(ttlMs: number): number {
  return Math.min(1000, Math.floor(ttlMs / 3));
}

/**
 * The session table of a lock table (SPEC 9): the statements that open, renew, end
 * and reap sessions, on whatever runs them (a DataSource in autocommit, or a query runner
 * inside a transaction).
 */
export class SessionTable {
  readonly #sql: SessionSql;

  constructor(
    readonly locks: LockTable,
    /** The session table's name as the dialect quotes it, `schema.table` included. */
    readonly name: string,
  ) {
    this.#sql = locks.dialect.sessions;
  }

  insert(ownerPHID: string, token: string, ttlMs: number): SqlStatement {
    return this.#sql.insertSession(this.name, ownerPHID, token, ttlMs, ttlMs + reapMarginMs(ttlMs));
  }

  renew(ownerPHID: string, token: string, ttlMs: number): SqlStatement {
    return this.#sql.renewSession(this.name, ownerPHID, token, ttlMs + reapMarginMs(ttlMs));
  }

  delete(ownerPHID: string, token: string): SqlStatement {
    return this.#sql.deleteSession(this.name, ownerPHID, token);
  }

  isMissing(error: unknown): boolean {
    return this.#sql.isMissingTable(error);
  }

  /** True when `owner`'s session exists and has not expired, read without locking its row. */
  async isLive(db: DataSource | QueryRunner, owner: string, token: string): Promise<boolean> {
    const { sql, params } = this.#sql.selectLive(this.name, owner, token);
    return ((await queryThroughTypeorm(db, sql, [...params])) as unknown[]).length > 0;
  }

  /** The owners among `owners` whose session has expired (none when the table is missing). */
  async expiredAmong(db: DataSource | QueryRunner, owners: readonly string[]): Promise<string[]> {
    if (owners.length === 0) return [];
    const { sql, params } = this.#sql.selectExpiredAmong(this.name, owners);
    return ownersOf(await queryThroughTypeorm(db, sql, [...params]));
  }

  /** Up to `limit` owners whose session has expired. */
  async expired(db: DataSource | QueryRunner, limit: number): Promise<string[]> {
    const { sql, params } = this.#sql.selectExpired(this.name, limit);
    return ownersOf(await queryThroughTypeorm(db, sql, [...params]));
  }

  /**
   * Inside a transaction on `runner`: deletes `owner`'s session if it has expired, and
   * then its locks. Resolves to the locks freed, or undefined when the session was not
   * dead (renewed since it was seen expired, or reaped by someone else first). The
   * session's row is deleted first: its row lock makes a heartbeat racing the reaper wait
   * for this transaction, and then find no row (the session learns it is lost) rather
   * than renew a session whose locks are being deleted.
   */
  async reap(runner: QueryRunner, owner: string): Promise<number | undefined> {
    const dead = this.#sql.deleteExpiredSession(this.name, owner);
    if ((await changeThroughTypeorm(runner, dead.sql, [...dead.params])) === 0) return undefined;
    const locks = this.locks.deleteByOwner(owner);
    return changeThroughTypeorm(runner, locks.sql, [...locks.params]);
  }

  /**
   * Inside a transaction on `runner`: deletes `owner`'s session of `token`, then releases
   * its locks; resolves to the locks released (none when that session's row is gone). The row first, as in {@link reap}: its DELETE waits for
   * an acquisition of the session in flight (which holds the row from its renewal to its
   * COMMIT), and the locks' DELETE, a later statement, then sees what that one committed;
   * an acquisition that comes after finds no row and takes nothing. The other way round,
   * PostgreSQL's locks DELETE could miss the rows of an acquisition committing meanwhile,
   * and leave them to an owner without a session, held for ever.
   */
  async end(runner: QueryRunner, owner: string, token: string): Promise<number> {
    const session = this.delete(owner, token);
    if ((await changeThroughTypeorm(runner, session.sql, [...session.params])) === 0) {
      // No row of this opening (reaped, or deleted by hand). A row of a later opening of the
      // owner means the owner's locks now are that session's: leave them. No row at all:
      // they are this one's, left behind (a reap deletes them with the row; a hand does not).
      const { sql, params } = this.#sql.selectAnyOfOwner(this.name, owner);
      if (((await queryThroughTypeorm(runner, sql, [...params])) as unknown[]).length > 0) return 0;
    }
    const locks = this.locks.deleteByOwner(owner);
    return changeThroughTypeorm(runner, locks.sql, [...locks.params]);
  }
}

/** Owners read back: MySQL returns `VARBINARY` as bytes (UTF-8 as written), the others text. */
function ownersOf(rows: unknown): string[] {
  return (rows as { ownerPHID: string | Buffer }[]).map((row) =>
    Buffer.isBuffer(row.ownerPHID) ? row.ownerPHID.toString('utf8') : row.ownerPHID,
  );
}
