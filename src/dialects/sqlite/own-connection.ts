import { DataSource, type DataSourceOptions, type Logger } from 'typeorm';

/** True when `database` names no file another connection could open (`:memory:`, or empty: a temporary database). */
function isPrivateDatabase(database: unknown): boolean {
  return typeof database !== 'string' || database === '' || database === ':memory:' || database.includes('mode=memory');
}

/**
 * The service's own connection to a SQLite DataSource's file (SPEC 4.11).
 *
 * TypeORM gives a SQLite DataSource one connection, shared by every query runner: an
 * app's `dataSource.transaction()` begun while the service's unit is open there becomes
 * a savepoint inside it (and the service's statements become part of the app's), so
 * one side's rollback undoes what the other committed. The service's own units
 * (acquisitions, releases, `commitWithLocks`, reads) therefore run on a DataSource of
 * their own on the same file, made from the app's options when first needed: the two
 * sides' transactions never mix, and SQLite's file lock orders them as it orders
 * processes. An in-memory database cannot be opened twice; there the service shares the
 * app's connection and refuses to run while the app's transaction is open.
 */
export class SqliteOwnConnection {
  readonly #main: DataSource;
  #own: DataSource | undefined;
  #opening: Promise<DataSource> | undefined;

  constructor(main: DataSource) {
    this.#main = main;
  }

  /** True when the service's units share the app's connection (an in-memory database). */
  get sharesAppConnection(): boolean {
    return isPrivateDatabase(this.#main.options.database);
  }

  /** The service's DataSource once it is open, without waiting; undefined before. */
  get ready(): DataSource | undefined {
    return this.#main.isInitialized ? this.#own : undefined;
  }

  /** The service's DataSource on the file, opened on first use. */
  async get(): Promise<DataSource> {
    if (!this.#main.isInitialized) {
      await this.close();
      throw new Error(
        'drydock-slotlock: the SQLite DataSource is not initialized (call dataSource.initialize() first)',
      );
    }
    if (this.sharesAppConnection) return this.#main;
    if (this.#own !== undefined) return this.#own;
    this.#opening ??= this.#open().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  /** Every DataSource whose managers belong to this service's database: the app's and its own. */
  dataSources(): DataSource[] {
    return this.#own === undefined ? [this.#main] : [this.#main, this.#own];
  }

  /**
   * How long a unit may wait for the file's lock, in milliseconds: the app's busy
   * timeout (`timeout`, better-sqlite3's default 5000). The service's own connection
   * never waits inside SQLite (its busy timeout is 0): better-sqlite3 would wait
   * synchronously, blocking the event loop, and a transaction of this process holding
   * the lock (the app's, on its own connection) could not finish meanwhile. The service
   * waits between attempts instead (see `ServiceConnection`).
   */
  get busyTimeoutMs(): number {
    return (this.#main.options as { timeout?: number }).timeout ?? 5000;
  }

  /** Closes the service's own connection; the next call opens a new one. */
  async close(): Promise<void> {
    const own = this.#own;
    this.#own = undefined;
    if (own?.isInitialized) await own.destroy();
  }

  async #open(): Promise<DataSource> {
    const own = new DataSource({
      ...this.#main.options,
      // The app's schema and migrations are the app's business: open, nothing else.
      synchronize: false,
      migrationsRun: false,
      dropSchema: false,
      migrations: [],
      subscribers: [],
      logger: loggerOf(this.#main),
      timeout: 0,
    } as DataSourceOptions);
    await own.initialize();
    // The app's subscribers see the entity events of `work`, as they would on its own connection.
    own.subscribers.push(...this.#main.subscribers);
    this.#own = own;
    return own;
  }
}

/**
 * A logger that hands everything to the app DataSource's logger of the moment, so that
 * the service's statements on its own connection are logged as the app's are, also
 * after `setOptions({ logging: true })` replaces that logger.
 */
function loggerOf(main: DataSource): Logger {
  return {
    logQuery: (...args) => main.logger.logQuery(...args),
    logQueryError: (...args) => main.logger.logQueryError(...args),
    logQuerySlow: (...args) => main.logger.logQuerySlow(...args),
    logSchemaBuild: (...args) => main.logger.logSchemaBuild(...args),
    logMigration: (...args) => main.logger.logMigration(...args),
    log: (...args) => main.logger.log(...args),
  };
}
