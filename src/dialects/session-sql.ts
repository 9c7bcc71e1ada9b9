import { Table, type QueryRunner } from 'typeorm';
import type { SqlStatement } from './dialect';

/**
 * The session table's statements on one engine (SPEC 9). Every time in them is the
 * database server's clock, in milliseconds since 1970: never the client's, whose clock
 * may differ from the server's and from other clients'.
 */
export interface SessionSql {
  /** Creates the session table (the session migration's `up`). */
  createSessionTable(runner: QueryRunner, table: string): Promise<void>;
  /** Drops the session table (the session migration's `down`). */
  dropSessionTable(runner: QueryRunner, table: string): Promise<void>;
  /**
   * Inserts a session that may be reaped `leaseMs` from now. `token` tells this opening of
   * the owner's session from a later one of the same owner (after this one was reaped).
   */
  insertSession(table: string, ownerPHID: string, token: string, ttlMs: number, leaseMs: number): SqlStatement;
  /** Moves a live session's end `leaseMs` from now; changes no row when it has expired, is gone or was replaced. */
  renewSession(table: string, ownerPHID: string, token: string, leaseMs: number): SqlStatement;
  /** A row `{ live: 1 }` when the session exists, is this one and has not expired; no row otherwise. Locks nothing. */
  selectLive(table: string, ownerPHID: string, token: string): SqlStatement;
  /** A row `{ live: 1 }` when any session of the owner exists, of whatever opening, expired or not. */
  selectAnyOfOwner(table: string, ownerPHID: string): SqlStatement;
  /** Deletes this session (its token's), live or not; no other opening of its owner. */
  deleteSession(table: string, ownerPHID: string, token: string): SqlStatement;
  /** Deletes a session only if it has expired: one row changed means it was dead and is now gone. */
  deleteExpiredSession(table: string, ownerPHID: string): SqlStatement;
  /** The owners among `owners` whose session has expired (rows `{ ownerPHID }`). */
  selectExpiredAmong(table: string, owners: readonly string[]): SqlStatement;
  /** Up to `limit` owners whose session has expired. */
  selectExpired(table: string, limit: number): SqlStatement;
  /** True when `error` says the session table does not exist (its migration has not run). */
  isMissingTable(error: unknown): boolean;
}

/** How one engine writes what the session statements need. */
export interface SessionSqlParts {
  quoteTable(table: string): string;
  quoteColumn(column: string): string;
  /** The n-th (1-based) bound parameter. */
  placeholder(n: number): string;
  /** The server's clock now, in milliseconds since 1970, as an integer expression. */
  readonly nowMs: string;
  /** How an owner is bound (MySQL: as bytes, see the MySQL dialect). */
  owner(ownerPHID: string): unknown;
  /** Column types of the session table: the owner's as the lock table's, the token's (ASCII), integers. */
  readonly ownerType: string;
  readonly tokenType: string;
  readonly intType: string;
  readonly bigintType: string;
  isMissingTable(error: unknown): boolean;
}

/**
 * The session statements of an engine, written once for all three. A session row is
 * `(ownerPHID, token, ttlMs, expiresAt)`: `expiresAt` is when the row may be reaped, by
 * the server's clock; `token` is this opening's, so that a session that was reaped and
 * comes back (a process paused past its TTL) cannot renew or end a later session of the
 * same owner.
 */
export function sessionSql(parts: SessionSqlParts): SessionSql {
  const { quoteTable, placeholder: p, nowMs } = parts;
  const owner = parts.quoteColumn('ownerPHID');
  const expiresAt = parts.quoteColumn('expiresAt');
  const ttlMs = parts.quoteColumn('ttlMs');
  const token = parts.quoteColumn('token');
  const placeholders = (count: number, from: number): string =>
    Array.from({ length: count }, (_, i) => p(from + i)).join(', ');
  const statements: SessionSql = {
    async createSessionTable(runner: QueryRunner, table: string): Promise<void> {
      await runner.createTable(
        new Table({
          name: table,
          columns: [
            { name: 'ownerPHID', type: parts.ownerType, length: '64', isPrimary: true },
            { name: 'token', type: parts.tokenType, length: '32' },
            { name: 'ttlMs', type: parts.intType },
            { name: 'expiresAt', type: parts.bigintType },
          ],
          indices: [{ name: 'key_expires', columnNames: ['expiresAt'] }],
        }),
      );
    },
    async dropSessionTable(runner: QueryRunner, table: string): Promise<void> {
      await runner.dropTable(table);
    },
    insertSession(table, ownerPHID, sessionToken, ttl, leaseMs) {
      return {
        sql:
          `INSERT INTO ${quoteTable(table)} (${owner}, ${token}, ${ttlMs}, ${expiresAt}) ` +
          `VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${nowMs} + ${p(4)})`,
        params: [parts.owner(ownerPHID), sessionToken, ttl, leaseMs],
      };
    },
    renewSession(table, ownerPHID, sessionToken, leaseMs) {
      return {
        sql:
          `UPDATE ${quoteTable(table)} SET ${expiresAt} = ${nowMs} + ${p(1)} ` +
          `WHERE ${owner} = ${p(2)} AND ${token} = ${p(3)} AND ${expiresAt} >= ${nowMs}`,
        params: [leaseMs, parts.owner(ownerPHID), sessionToken],
      };
    },
    selectLive(table, ownerPHID, sessionToken) {
      return {
        sql:
          `SELECT 1 AS live FROM ${quoteTable(table)} ` +
          `WHERE ${owner} = ${p(1)} AND ${token} = ${p(2)} AND ${expiresAt} >= ${nowMs}`,
        params: [parts.owner(ownerPHID), sessionToken],
      };
    },
    selectAnyOfOwner(table, ownerPHID) {
      return {
        sql: `SELECT 1 AS live FROM ${quoteTable(table)} WHERE ${owner} = ${p(1)}`,
        params: [parts.owner(ownerPHID)],
      };
    },
    deleteSession(table, ownerPHID, sessionToken) {
      return {
        sql: `DELETE FROM ${quoteTable(table)} WHERE ${owner} = ${p(1)} AND ${token} = ${p(2)}`,
        params: [parts.owner(ownerPHID), sessionToken],
      };
    },
    deleteExpiredSession(table, ownerPHID) {
      return {
        sql: `DELETE FROM ${quoteTable(table)} WHERE ${owner} = ${p(1)} AND ${expiresAt} < ${nowMs}`,
        params: [parts.owner(ownerPHID)],
      };
    },
    selectExpiredAmong(table, owners) {
      return {
        sql:
          `SELECT ${owner} AS ${parts.quoteColumn('ownerPHID')} FROM ${quoteTable(table)} ` +
          `WHERE ${owner} IN (${placeholders(owners.length, 1)}) AND ${expiresAt} < ${nowMs}`,
        params: owners.map((o) => parts.owner(o)),
      };
    },
    selectExpired(table, limit) {
      return {
        sql:
          `SELECT ${owner} AS ${parts.quoteColumn('ownerPHID')} FROM ${quoteTable(table)} ` +
          `WHERE ${expiresAt} < ${nowMs} ORDER BY ${expiresAt} LIMIT ${p(1)}`,
        params: [limit],
      };
    },
    isMissingTable: parts.isMissingTable,
  };
  return Object.freeze(statements);
}

/** The session table the session migration creates, in the DataSource's own database or schema. */
export const SESSION_TABLE_NAME = 'drydock_slotlock_session';
