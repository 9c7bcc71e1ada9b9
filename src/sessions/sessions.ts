import { randomBytes } from 'node:crypto';
import type { QueryRunner } from 'typeorm';
import { changeThroughTypeorm } from '../compat/typeorm-driver';
import { publish } from '../diagnostics/slot-lock-channels';
import { retryOrDriverError } from '../services/retry-on-contention';
import type { RetryOptions } from '../services/slot-lock.options';
import { guarded, inCallerTransaction, transactionGone } from '../services/units/caller-transaction-unit';
import type { ServiceConnection } from '../services/units/service-connection';
import { outsideUnits } from '../services/serialize-per-connection';
import type { SessionTable } from './session-table';
import { SlotLockSession } from './slot-lock-session';
import { SlotLockSessionLostError } from '../errors/slot-lock-session-lost.error';
import { SlotLockSessionError } from '../errors/slot-lock-session.error';

/** What {@link SlotLockService.reapExpiredSessions} freed. */
export interface ReapedSessions {
  /** Expired sessions deleted. */
  readonly sessions: number;
  /** Locks those sessions held, now free. */
  readonly locks: number;
}

/** Owners reaped per round of a bulk reap. */
const REAP_BATCH = 100;

/**
 * Owners of sessions this service closed that it still refuses (the most recent ones): an
 * acquisition by a closed session's owner would otherwise take locks that no session
 * renews and none ever reaps. Bounded, so that a long-lived service opening a session per
 * job does not grow without end.
 */
const CLOSED_OWNERS_KEPT = 10_000;

/** Throws when `session` may take no more locks: lost, or closed (or closing). */
function refuseIfEnded(session: SlotLockSession): void {
  const lost = session.lostReason;
  if (lost !== undefined) throw lost;
  if (session.closed) throw new SlotLockSessionLostError(session.ownerPHID, 'it was closed');
}

/** A new session owner, shaped as Phorge's PHIDs are: `PHID-SESS-` and 20 characters of [a-z0-9]. */
export function newSessionOwner(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return 'PHID-SESS-' + Array.from(randomBytes(20), (byte) => alphabet[byte % alphabet.length]).join('');
}

/**
 * The sessions of one service (SPEC 9): those this process opened (so that every
 * acquisition of one first checks, in its own transaction, that it still lives), and the
 * reaping of other processes' expired sessions.
 */
export class Sessions {
  readonly #table: SessionTable;
  readonly #connection: ServiceConnection;
  readonly #retry: Readonly<RetryOptions>;
  readonly #open = new Map<string, SlotLockSession>();
  readonly #closed = new Set<string>();
  readonly #onReleased: (owner: string, count: number) => void;
  /** Each open session's token (see {@link SessionSql}). */
  readonly #tokens = new WeakMap<SlotLockSession, string>();

  /**
   * @param onReleased - told of every owner whose locks a session's end or a reaping
   *   deleted, with how many (the service's waiting lines hand the slots on).
   */
  constructor(
    table: SessionTable,
    connection: ServiceConnection,
    retry: Readonly<RetryOptions>,
    onReleased: (owner: string, count: number) => void = () => undefined,
  ) {
    this.#table = table;
    this.#connection = connection;
    this.#retry = retry;
    this.#onReleased = onReleased;
  }

  /**
   * The session of `owner` this process opened and has not closed, for an acquisition by
   * `owner`; throws when `owner`'s session here was closed (see {@link CLOSED_OWNERS_KEPT}).
   */
  of(owner: string): SlotLockSession | undefined {
    const session = this.#open.get(owner);
    if (session === undefined && this.#closed.has(owner)) {
      throw new SlotLockSessionLostError(owner, 'it was closed: open a new session to take locks again');
    }
    return session;
  }

  /**
   * Writes a session's row (taking over an expired one of the same owner) and starts its
   * heartbeat. `refusedOnceClosed`: whether the owner is refused locks after `close()` (a
   * session the caller holds, which it might go on using); not for one `withLocks` opened
   * and closed itself, whose owner the caller may use as a plain owner afterwards.
   */
  async open(owner: string, ttlMs: number, refusedOnceClosed = true): Promise<SlotLockSession> {
    if (this.#open.has(owner)) {
      throw new SlotLockSessionError(
        'owner-in-use',
        owner,
        `a session of ${JSON.stringify(owner)} is open already in this process: close it first`,
      );
    }
    const startedAt = performance.now();
    const token = randomBytes(16).toString('hex');
    try {
      await this.#autocommit(this.#table.insert(owner, token, ttlMs));
    } catch (error) {
      if (this.#table.isMissing(error)) throw this.#missingTable(error, owner);
      if (this.#table.locks.classify(error) !== 'conflict') throw error;
      // A row of this owner: an expired one is reaped and taken over, a live one is another process's.
      if ((await this.reapHolders([owner])) === 0) {
        throw new SlotLockSessionError(
          'owner-in-use',
          owner,
          `a live session of ${JSON.stringify(owner)} exists (another process opened it): ` +
            'give each session an owner of its own, or leave ownerPHID out',
          { cause: error },
        );
      }
      await this.#autocommit(this.#table.insert(owner, token, ttlMs));
    }
    const session = new SlotLockSession(
      owner,
      ttlMs,
      {
        // From a timer, which would inherit the unit (SQLite) openSession was called in.
        renew: () => outsideUnits(async () => (await this.#autocommit(this.#table.renew(owner, token, ttlMs))) > 0),
        end: () => this.#end(owner, token),
        discard: () => this.#autocommit(this.#table.delete(owner, token)).then(() => undefined),
        closed: () => {
          if (this.#open.get(owner) !== session) return;
          this.#open.delete(owner);
          if (!refusedOnceClosed) return;
          this.#closed.add(owner);
          if (this.#closed.size > CLOSED_OWNERS_KEPT) this.#closed.delete(this.#closed.values().next().value!);
        },
      },
      startedAt,
    );
    this.#tokens.set(session, token);
    this.#open.set(owner, session);
    this.#closed.delete(owner);
    return session;
  }

  /**
   * Inside the transaction on `runner` that is about to take locks for `session`: renews
   * it, or throws its SlotLockSessionLostError when its row has expired or is gone. The
   * renewal's row lock stays until that transaction ends, so no reaper can delete the
   * session between this check and the locks' commit.
   */
  async renewIn(session: SlotLockSession, runner: QueryRunner): Promise<void> {
    refuseIfEnded(session);
    const { sql, params } = this.#table.renew(session.ownerPHID, this.#tokenOf(session), session.ttlMs);
    if ((await changeThroughTypeorm(runner, sql, [...params])) === 0) {
      throw session.lose('its row expired or was deleted (reaped by another process) before this acquisition');
    }
  }

  /**
   * Inside the service's own transaction on `runner`, before it takes locks for
   * `session`: throws its SlotLockSessionLostError unless it still lives. Reads without
   * locking the row, so that the session's heartbeat is not held up by the unit's work;
   * the unit renews the session ({@link renewIn}) just before its COMMIT.
   */
  async checkLive(session: SlotLockSession, runner: QueryRunner): Promise<void> {
    refuseIfEnded(session);
    if (!(await this.#table.isLive(runner, session.ownerPHID, this.#tokenOf(session)))) {
      throw session.lose('its row expired or was deleted (reaped by another process) before this acquisition');
    }
  }

  /**
   * Reaps those of `owners` (the holders a failed acquisition met) whose session has
   * expired: deletes the session and its locks. Resolves to how many were reaped; 0 when
   * the session table does not exist. With `callerRunner`, inside the caller's
   * transaction, where the failed insert may hold a lock on the very rows to delete.
   */
  async reapHolders(owners: readonly string[], callerRunner?: QueryRunner): Promise<number> {
    const unique = [...new Set(owners)];
    if (unique.length === 0) return 0;
    try {
      if (callerRunner !== undefined) {
        const table = this.#table.locks;
        return await inCallerTransaction(table, callerRunner, transactionGone, () =>
          guarded(table, callerRunner, async () => {
            let reaped = 0;
            for (const owner of await this.#table.expiredAmong(callerRunner, unique)) {
              if ((await this.#table.reap(callerRunner, owner)) !== undefined) reaped += 1;
            }
            return reaped;
          }),
        );
      }
      const dead = await this.#connection.exclusive((dataSource) => this.#table.expiredAmong(dataSource, unique));
      let reaped = 0;
      for (const owner of dead) if ((await this.#reapOne(owner)) !== undefined) reaped += 1;
      return reaped;
    } catch (error) {
      if (this.#table.isMissing(error)) return 0;
      throw error;
    }
  }

  /** Reaps every expired session (SPEC 9, `slotlock reap`). */
  async reapAll(): Promise<ReapedSessions> {
    let sessions = 0;
    let locks = 0;
    const seen = new Set<string>();
    for (;;) {
      let dead: string[];
      try {
        dead = await this.#connection.exclusive((dataSource) => this.#table.expired(dataSource, REAP_BATCH));
      } catch (error) {
        throw this.#table.isMissing(error) ? this.#missingTable(error) : error;
      }
      // An owner seen before was renewed or reaped meanwhile; stop rather than loop on it.
      const fresh = dead.filter((owner) => !seen.has(owner));
      for (const owner of fresh) {
        seen.add(owner);
        const freed = await this.#reapOne(owner);
        if (freed !== undefined) {
          sessions += 1;
          locks += freed;
        }
      }
      if (dead.length < REAP_BATCH || fresh.length === 0) return { sessions, locks };
    }
  }

  /** Closes every session this process opened (the service is closing). */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.#open.values()].map((session) => session.close()));
  }

  #reapOne(owner: string): Promise<number | undefined> {
    return this.#retried(() =>
      this.#connection.exclusive((dataSource) =>
        this.#connection.transaction(dataSource, (runner) => this.#table.reap(runner, owner)),
      ),
    ).then((freed) => {
      if (freed !== undefined) this.#released(owner, freed);
      return freed;
    });
  }

  #tokenOf(session: SlotLockSession): string {
    return this.#tokens.get(session)!;
  }

  #end(owner: string, token: string): Promise<number> {
    return this.#retried(() =>
      this.#connection.exclusive((dataSource) =>
        this.#connection.transaction(dataSource, (runner) => this.#table.end(runner, owner, token)),
      ),
    ).then((released) => {
      this.#released(owner, released);
      return released;
    });
  }

  #released(owner: string, count: number): void {
    this.#onReleased(owner, count);
    publish.released(() => ({ ownerPHID: owner, count }));
  }

  #autocommit(statement: { sql: string; params: readonly unknown[] }): Promise<number> {
    return this.#retried(() =>
      this.#connection.exclusive((dataSource) => this.#connection.autocommit(dataSource, statement)),
    );
  }

  #retried<T>(attempt: () => Promise<T>): Promise<T> {
    const locks = this.#table.locks;
    return retryOrDriverError(this.#retry, (error) => locks.isContention(error), attempt);
  }

  #missingTable(cause: unknown, owner?: string): SlotLockSessionError {
    return new SlotLockSessionError(
      'no-session-table',
      owner,
      `the session table ${this.#table.name} does not exist: run the session migrations ` +
        '(slotLockSessionMigrations in your DataSource, or `slotlock migrate`)',
      { cause },
    );
  }
}
