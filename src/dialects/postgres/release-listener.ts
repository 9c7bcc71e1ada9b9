import type { DataSource } from 'typeorm';
import { newPostgresClient, type PostgresListeningClient } from '../../compat/typeorm-driver';
import type { ReleaseWakeups } from '../../waiting/wait-for-locks';

/** The channel every release notifies (its payload empty): waiters listen on it (SPEC 10). */
export const RELEASE_CHANNEL = 'drydock_slotlock_released';

const listeners = new WeakMap<DataSource, PostgresReleaseListener>();

/**
 * Wakes a PostgreSQL DataSource's waiters when a lock is released anywhere (SPEC 10):
 * releases `NOTIFY` a channel (see the dialect's `deleteByOwner`), and one connection per
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
    try {
      await client.connect();
      client.connection?.stream?.unref?.();
      this.#dataSource.logger.logQuery(sql, []);
      await client.query(sql);
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
