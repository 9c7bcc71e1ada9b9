import type { DataSource } from 'typeorm';
import { newPostgresClient, type PostgresListeningClient } from '../../compat/typeorm-driver';
import type { ReleaseWakeups } from '../../waiting/wait-for-locks';

/** The channel a release notifies (its payload empty) while anyone waits: waiters listen on it (SPEC 10). */
export const RELEASE_CHANNEL = 'drydock_slotlock_released';

/**
 * How a release knows that someone listens: every listening connection holds a shared
 * advisory lock on each of `(WAITERS_LOCK_KEY, 0…WAITERS_LOCK_SLOTS-1)`; a release tries
 * an exclusive one on a random slot for its transaction, and notifies only when it cannot
 * have it. NOTIFY itself is dear: PostgreSQL serializes the commits of every transaction
 * that notified, so notifying on every release halved the acquire+release cycles of 8
 * callers (measured here, K=1 and K=10); the try costs nothing measurable. Random slots
 * keep concurrent releases from mistaking each other for listeners (which would only
 * cost a needless notification).
 */
export const WAITERS_LOCK_KEY = 1359417347;
export const WAITERS_LOCK_SLOTS = 64;

/**
 * How long the listening connection stays open after its last waiter, in milliseconds:
 * under steady contention waits come one after another, and opening a connection for each
 * (connect, LISTEN, the flag) cost more than the wait itself (the fairness bench opened 193
 * connections for 275 acquisitions). Neither its timer nor its socket keeps the process alive.
 */
export const LISTENER_LINGER_MS = 5_000;

const listeners = new WeakMap<DataSource, PostgresReleaseListener>();

/**
 * Wakes a PostgreSQL DataSource's waiters when a lock is released anywhere (SPEC 10):
 * releases `NOTIFY` a channel while anyone listens (see {@link WAITERS_LOCK_KEY} and the
 * dialect's `deleteByOwner`), and one connection per
 * DataSource `LISTEN`s to it while anyone waits: not one per waiter, and not one of the
 * pool's, which a pool of one could not spare. It is opened by the first waiter that has
 * to wait and closed when the last stops. Should it fail, waiters still poll.
 */
export class PostgresReleaseListener implements ReleaseWakeups {
  readonly #dataSource: DataSource;
  readonly #subscribers = new Set<() => void>();
  #client: PostgresListeningClient | undefined;
  #listening: Promise<void> | undefined;
  /** The flag's slots the listening connection could not take yet. */
  #missingSlots: number[] = [];
  #lingering: NodeJS.Timeout | undefined;

  private constructor(dataSource: DataSource) {
    this.#dataSource = dataSource;
  }

  /** The one listener of a DataSource. */
  static of(dataSource: DataSource): PostgresReleaseListener {
    let listener = listeners.get(dataSource);
    if (listener === undefined) {
      listener = new PostgresReleaseListener(dataSource);
      listeners.set(dataSource, listener);
    }
    return listener;
  }

  async subscribe(onRelease: () => void): Promise<() => void> {
    this.#subscribers.add(onRelease);
    clearTimeout(this.#lingering);
    if (this.#listening === undefined) this.#listening = this.#listen();
    else if (this.#missingSlots.length > 0) void this.#listening.then(() => this.#raiseFlag()); // slots a release held
    await this.#listening;
    return () => {
      this.#subscribers.delete(onRelease);
      if (this.#subscribers.size > 0) return;
      clearTimeout(this.#lingering);
      this.#lingering = setTimeout(() => {
        if (this.#subscribers.size === 0) this.close();
      }, LISTENER_LINGER_MS);
      this.#lingering.unref();
    };
  }

  async #listen(): Promise<void> {
    const client = newPostgresClient(this.#dataSource);
    this.#client = client;
    this.#missingSlots = Array.from({ length: WAITERS_LOCK_SLOTS }, (_, slot) => slot);
    client.on('notification', (message) => {
      if (message.channel !== RELEASE_CHANNEL) return;
      for (const wake of [...this.#subscribers]) wake();
    });
    // A lost connection leaves the waiters to their polling; the next waiter listens anew.
    const dropped = (): void => {
      if (this.#client === client) this.#forget();
    };
    client.on('error', dropped);
    client.on('end', dropped);
    const sql = `LISTEN ${RELEASE_CHANNEL}`;
    try {
      await client.connect();
      client.connection?.stream?.unref?.();
      this.#dataSource.logger.logQuery(sql, []);
      await client.query(sql);
      // Listening first, then telling releases so: no release that saw the flag goes unheard.
      await this.#raiseFlag();
    } catch (error) {
      this.#dataSource.logger.logQueryError(error instanceof Error ? error.message : String(error), sql, []);
      if (this.#client === client) this.#forget();
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Takes the shared advisory locks that tell releases someone listens, each only if it is
   * free now: a release inside an app's open transaction holds its slot until that
   * transaction ends, and waiting for it would hold every waiter up (their waits have
   * deadlines). A slot missed is tried again at the next waiter's subscription; meanwhile
   * a release that happens to pick it is noticed by polling.
   */
  async #raiseFlag(): Promise<void> {
    const client = this.#client;
    const slots = this.#missingSlots;
    if (client === undefined || slots.length === 0) return;
    this.#missingSlots = [];
    const flag =
      `SELECT slot FROM unnest('{${slots.join(',')}}'::int[]) AS slot ` +
      `WHERE NOT pg_try_advisory_lock_shared(${WAITERS_LOCK_KEY}, slot)`;
    this.#dataSource.logger.logQuery(flag, []);
    try {
      const missed = (await client.query(flag)) as { rows: Array<{ slot: number }> };
      if (this.#client === client) this.#missingSlots.push(...missed.rows.map((row) => row.slot));
    } catch {
      // A failure leaves the waiters to their polling; the slots are tried again.
      if (this.#client === client) this.#missingSlots.push(...slots);
    }
  }

  /** Closes the listening connection now (the service closing); the next waiter opens a new one. */
  close(): void {
    clearTimeout(this.#lingering);
    this.#stop();
  }

  #stop(): void {
    const client = this.#client;
    const listening = this.#listening;
    this.#forget();
    // Ended once its connecting has settled, so that no half-open client is left behind.
    void listening?.then(() => client?.end()).catch(() => undefined);
  }

  #forget(): void {
    this.#client = undefined;
    this.#listening = undefined;
  }
}
