import { SlotLockSessionLostError } from '../errors/slot-lock-session-lost.error';

/** What a session needs from the service that opened it. */
export interface SessionKeeping {
  /** Pushes the session's end a TTL away; false when its row has expired or is gone. */
  renew(): Promise<boolean>;
  /** Releases the session's locks and deletes its row; resolves to the locks released. */
  end(): Promise<number>;
  /** Deletes the session's row alone, leaving the owner's locks as they are. */
  discard(): Promise<void>;
  /** Told once the session is closed: the service forgets it. */
  closed(): void;
}

/**
 * An owner whose locks are freed when it stops renewing them (SPEC 9): opened by
 * {@link SlotLockService.openSession}. Use its `ownerPHID` with the service's methods;
 * while the process lives it renews itself every third of its TTL, by the database
 * server's clock. If a TTL passes without a renewal reaching the database, or its row is
 * deleted under it, the session is lost: `signal` aborts (its reason a
 * {@link SlotLockSessionLostError}), and the service refuses it every further lock.
 * Once its TTL (and a small margin) has passed, any acquisition that meets its locks
 * deletes them and takes what it asked for.
 *
 * The heartbeat's timer does not keep the process alive.
 *
 * @example
 * ```ts
 * const session = await slotLocks.openSession({ ttlMs: 10_000 });
 * try {
 *   await slotLocks.acquireLocks(session.ownerPHID, ['host(7)']);
 *   await build({ signal: session.signal });
 * } finally {
 *   await session.close();
 * }
 * ```
 */
export class SlotLockSession {
  readonly #controller = new AbortController();
  readonly #keeping: SessionKeeping;
  #beatTimer: NodeJS.Timeout | undefined;
  #lossTimer: NodeJS.Timeout | undefined;
  #beating: Promise<void> | undefined;
  #closing: Promise<number> | undefined;
  #lastError: unknown;

  /**
   * @internal Made by `SlotLockService.openSession`, once its row is written.
   * @param renewedAt - `performance.now()` when the write of its row began.
   */
  constructor(
    /** The owner every lock of the session is taken for. */
    readonly ownerPHID: string,
    /** How long the session lives without a heartbeat, in milliseconds. */
    readonly ttlMs: number,
    keeping: SessionKeeping,
    renewedAt: number,
  ) {
    this.#keeping = keeping;
    this.#renewedSince(renewedAt);
    this.#scheduleBeat();
  }

  /** Aborts when the session is lost (expired, or deleted under it); its reason says why. Not on `close()`. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The reason the session was lost, or undefined while it lives. */
  get lostReason(): SlotLockSessionLostError | undefined {
    return this.#controller.signal.aborted ? (this.#controller.signal.reason as SlotLockSessionLostError) : undefined;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Stops the heartbeat, releases every lock of the session and deletes its row; resolves
   * to the number of locks released. Safe to call more than once (each call resolves as
   * the first). Should it fail, the session is left to expire: its locks are free once
   * its TTL has passed.
   */
  close(): Promise<number> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * @internal Ends the session without releasing anything: for a `withLocks` whose
   * acquisition failed, so that locks its owner held before the call stay held.
   */
  discard(): Promise<number> {
    this.#closing ??= (async () => {
      this.#stopTimers();
      await this.#beating;
      try {
        await this.#keeping.discard();
        return 0;
      } finally {
        this.#keeping.closed();
      }
    })();
    return this.#closing;
  }

  /** @internal Marks the session lost: its signal aborts. */
  lose(why: string, cause?: unknown): SlotLockSessionLostError {
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(new SlotLockSessionLostError(this.ownerPHID, why, cause === undefined ? {} : { cause }));
      this.#stopTimers();
    }
    return this.#controller.signal.reason as SlotLockSessionLostError;
  }

  async #close(): Promise<number> {
    this.#stopTimers();
    await this.#beating; // a heartbeat in flight ends before the row goes
    try {
      return await this.#keeping.end();
    } finally {
      this.#keeping.closed();
    }
  }

  #stopTimers(): void {
    clearTimeout(this.#beatTimer);
    clearTimeout(this.#lossTimer);
  }

  /** A renewal that began at `startedAt` succeeded: the session is lost a TTL after it, unless renewed again. */
  #renewedSince(startedAt: number): void {
    clearTimeout(this.#lossTimer);
    // A heartbeat that returns after close() began arms nothing: a closed session is never lost.
    if (this.#closing !== undefined) return;
    const remaining = Math.max(0, startedAt + this.ttlMs - performance.now());
    this.#lossTimer = setTimeout(() => {
      this.lose(`no heartbeat reached the database within its TTL (${this.ttlMs} ms)`, this.#lastError);
    }, remaining);
    this.#lossTimer.unref();
  }

  #scheduleBeat(): void {
    if (this.#closing !== undefined || this.#controller.signal.aborted) return;
    this.#beatTimer = setTimeout(
      () => {
        this.#beating = this.#beat().finally(() => {
          this.#beating = undefined;
          this.#scheduleBeat();
        });
      },
      Math.max(1, Math.floor(this.ttlMs / 3)),
    );
    this.#beatTimer.unref();
  }

  async #beat(): Promise<void> {
    const startedAt = performance.now();
    try {
      if (await this.#keeping.renew()) this.#renewedSince(startedAt);
      else if (this.#closing === undefined) this.lose('its row expired or was deleted (reaped by another process)');
    } catch (error) {
      // A heartbeat that failed is tried again at the next beat; the TTL decides when the session is lost.
      this.#lastError = error;
    }
  }
}
