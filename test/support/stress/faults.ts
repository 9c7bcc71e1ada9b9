/**
 * Faults, as a harness: connections killed under the service, the server shut down or
 * crashed under a live DataSource. Each scenario runs in a child process of its own
 * (./fault-worker.ts) that records every uncaught exception and unhandled rejection, so
 * the test can require that there were none. This file holds what both sides share.
 */
import * as path from 'node:path';
import type { ErrorSample } from './worker-kit';

export const FAULT_WORKER_FILE = path.join(__dirname, 'fault-worker.ts');

/** A journal table for the callers' own writes (what must vanish with their locks). */
export const JOURNAL_TABLE = 'fault_journal';
export const JOURNAL_TABLE_DDL =
  `CREATE TABLE ${JOURNAL_TABLE} (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, ` +
  'note VARCHAR(128) NOT NULL) ENGINE=InnoDB';

/** Rejections while the server is down must arrive within this long. */
export const PROMPT_MS = 5000;

/**
 * What a rejection must say, in its driver code or its message: the connection failed
 * (refused, reset, lost, killed), in words a user can act on.
 */
export const CLEAR_CONNECTION_ERROR =
  /ECONNREFUSED|ECONNRESET|EPIPE|PROTOCOL_CONNECTION_LOST|connect|Connection lost|closed|ended by the other party|gone away|shutdown|killed/i;

/** True when `error` (its code and message) says that the connection failed. */
export function isClearConnectionError(error: ErrorSample | undefined): boolean {
  return (
    error !== undefined && CLEAR_CONNECTION_ERROR.test(`${error.code ?? ''} ${error.errno ?? ''} ${error.message}`)
  );
}

export type FaultScenario =
  | { readonly kind: 'kill-caller-transaction' }
  | {
      readonly kind: 'kill-chunked';
      readonly rounds: number;
      readonly keysPerRound: number;
      readonly maxPacket: number;
    }
  | {
      readonly kind: 'shutdown';
      readonly how: 'stop' | 'crash';
      readonly downMs: number;
      /** Keys of the chunked acquisition in flight when the server goes. */
      readonly inFlightKeys: number;
      /** max_allowed_packet until the restart (small: many statements per acquisition). */
      readonly maxPacket: number;
    };

export interface FaultWorkerConfig {
  /** `mysql://…/database` on the throwaway server. */
  readonly url: string;
  readonly scenario: FaultScenario;
}

/** How one call ended. */
export interface CallOutcome {
  readonly call: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly slotLockException: boolean;
  readonly error?: ErrorSample;
}

/** Kill the connection of a caller's transaction after it took locks. */
export interface KillCallerResult {
  readonly kind: 'kill-caller-transaction';
  readonly cases: Array<{
    readonly name: string;
    /** How the caller's call ended (it must fail, and not as a SlotLockException). */
    readonly outcome: CallOutcome;
    /** Rows the killed owner held afterwards (must be 0). */
    readonly heldByKilledOwner: number;
    /** The caller's own write, found afterwards (must be 0: it rolled back with the locks). */
    readonly journalRowsLeft: number;
    /** How long until every key read as free again. */
    readonly msUntilFree: number | null;
    /** The next caller got every key. */
    readonly nextCallerGotAll: boolean;
  }>;
  readonly unhandled: ErrorSample[];
}

/** Kill the service's own connection in the middle of a long, chunked acquisition. */
export interface KillChunkedResult {
  readonly kind: 'kill-chunked';
  readonly maxAllowedPacket: number;
  readonly rounds: Array<{
    readonly round: number;
    /** How it was killed, or `none (finished first)`. */
    readonly kill: string;
    /** Rows the transaction had inserted when it was killed (INNODB_TRX, refreshed lazily). */
    readonly rowsAtKill: number | null;
    readonly keys: number;
    readonly outcome: CallOutcome;
    /** Rows the owner held afterwards: 0 or `keys`, never in between. */
    readonly heldAfter: number;
    /** The same DataSource took and released a set right after. */
    readonly recovered: boolean;
  }>;
  /** INSERT statements one acquisition of `keys` took (chunks). */
  readonly statementsPerAcquisition: number;
  readonly unhandled: ErrorSample[];
}

/** Shut the server down (or crash it) under a live DataSource, then start it again. */
export interface ShutdownResult {
  readonly kind: 'shutdown';
  readonly how: 'stop' | 'crash';
  /** Locks taken before the shutdown, found again after the restart. */
  readonly locksBefore: number;
  readonly locksAfterRestart: number;
  /** Every public method called while the server was down, twice. */
  readonly whileDown: CallOutcome[];
  /** Calls of the background load (4 callers cycling on fresh keys), by phase. */
  readonly load: Record<'before' | 'during' | 'after', { ok: number; failed: number; slotLockExceptions: number }>;
  /** The load's slowest call, and its unclear failures (messages that did not say the connection failed). */
  readonly loadMaxMs: number;
  readonly loadUnclear: ErrorSample[];
  /** After the restart: failed calls before the first success, and how long that took. */
  readonly failuresAfterRestart: number;
  readonly msToFirstSuccessAfterRestart: number;
  /** Owners seen holding part of their set after the restart (must be none). */
  readonly partialOwners: string[];
  /** Owners of the load left holding whole sets (their release failed while the server was down). */
  readonly wholeSetsLeftByFailedReleases: number;
  readonly downMs: number;
  /** A chunked acquisition in flight when the server went: all or nothing after the restart. */
  readonly inFlightChunked: {
    readonly keys: number;
    /** Rows it had inserted (uncommitted) when the server was stopped. */
    readonly rowsWhenStopped: number;
    readonly outcome: CallOutcome;
    readonly heldAfterRestart: number;
  };
  readonly unhandled: ErrorSample[];
}

export type FaultWorkerResult = KillCallerResult | KillChunkedResult | ShutdownResult;
