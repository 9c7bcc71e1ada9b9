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
    this.#listening ??= this.#listen();
    await this.#listening;
    return () => {
      this.#subscribers.delete(onRelease);
      if (this.#subscribers.size === 0) this.#stop();
    };
  }

  async #listen(): Promise<void> {
    const client = newPostgresClient(this.#dataSource);
    this.#client = client;
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
    // Listening first, then telling releases so: no release that saw the flag goes unheard.
    const flag = `SELECT pg_advisory_lock_shared(${WAITERS_LOCK_KEY}, slot) FROM generate_series(0, ${WAITERS_LOCK_SLOTS - 1}) AS slot`;
    try {
      await client.connect();
      client.connection?.stream?.unref?.();
      for (const statement of [sql, flag]) {
        this.#dataSource.logger.logQuery(statement, []);
        await client.query(statement);
      }
    } catch (error) {
      this.#dataSource.logger.logQueryError(error instanceof Error ? error.message : String(error), sql, []);
      if (this.#client === client) this.#forget();
      await client.end().catch(() => undefined);
    }
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
