import { DataSource, type DataSourceOptions, type Logger } from 'typeorm';
import { sqliteConnectionOf, type SqliteDatabase } from '../../compat/typeorm-driver';

/** One per app DataSource, shared by every service made with it (one queue, one connection). */
const byAppDataSource = new WeakMap<DataSource, SqliteOwnConnection>();

/**
 * The service's own connection to a SQLite DataSource's file (SPEC 4.11).
 *
 * TypeORM gives a SQLite DataSource one connection, shared by every query runner: an
 * app's `dataSource.transaction()` begun while the service's unit is open there becomes
 * a savepoint inside it (and the service's statements become part of the app's), so
 * one side's rollback undoes what the other committed. The service's own units
 * (acquisitions, releases, `commitWithLocks`, reads) therefore run on a DataSource of
 * their own, made from the app's options when first needed, on the very file the app's
 * connection has open: the two sides' transactions never mix, and SQLite's file lock
 * orders them as it orders processes. An in-memory database cannot be opened twice;
 * there the service shares the app's connection (see `ServiceConnection`).
 */
export class SqliteOwnConnection {
  readonly #main: DataSource;
  #own: DataSource | undefined;
  /** The app's connection the service's was opened beside: when it changes, so must the service's. */
  #besides: SqliteDatabase | undefined;
  #opening: Promise<DataSource> | undefined;
  /** The app connection whose file was last looked up, and that file (undefined: in memory). */
  #checked: SqliteDatabase | undefined;
  #appFile: string | undefined;

  private constructor(main: DataSource) {
    this.#main = main;
  }

  /** The service connection of an app DataSource, shared by all services made with it. */
  static of(main: DataSource): SqliteOwnConnection {
    let connection = byAppDataSource.get(main);
    if (connection === undefined) byAppDataSource.set(main, (connection = new SqliteOwnConnection(main)));
    return connection;
  }

  /** The service's DataSource when it is open beside the app's current connection, without waiting. */
  get ready(): DataSource | undefined {
    return this.#own !== undefined && this.#besides === sqliteConnectionOf(this.#main) && this.#besides?.open === true
      ? this.#own
      : undefined;
  }

  /** The DataSource the service's units run on: its own, opened (again) when needed, or the app's. */
  async get(): Promise<DataSource> {
    const app = sqliteConnectionOf(this.#main);
    if (!this.#main.isInitialized || app === undefined) {
      await this.close();
      throw new Error(
        'drydock-slotlock: the SQLite DataSource is not initialized (call dataSource.initialize() first)',
      );
    }
    if (this.ready !== undefined) return this.#own!;
    if (app !== this.#checked) {
      this.#checked = app;
      this.#appFile = fileOf(app);
    }
    // An in-memory or temporary database cannot be opened twice: share the app's connection.
    if (this.#appFile === undefined) return this.#main;
    this.#opening ??= this.#reopen(app).finally(() => {
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

  /** Settles once an opening in progress has ended (either way). */
  async opened(): Promise<void> {
    await this.#opening?.catch(() => undefined);
  }

  /** Closes the service's own connection (after an opening in progress); the next call opens a new one. */
  async close(): Promise<void> {
    await this.#opening?.catch(() => undefined);
    const own = this.#own;
    this.#own = undefined;
    this.#besides = undefined;
    if (own?.isInitialized) await own.destroy();
  }

  async #reopen(app: SqliteDatabase): Promise<DataSource> {
    const previous = this.#own;
    this.#own = undefined;
    if (previous?.isInitialized) await previous.destroy();
    const own = new DataSource({
      ...this.#main.options,
      // The file the app's connection has open, by its absolute path: the app's option may
      // be relative to a working directory that has changed since.
      database: this.#appFile,
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
    // The service waits for the file itself (see busyTimeoutMs): an app's prepareDatabase that
    // sets a busy timeout would otherwise make each busy statement block the event loop.
    sqliteConnectionOf(own)?.pragma('busy_timeout = 0');
    // The app's subscribers, those registered later included, see the service's statements and
    // the entity events of `work`, as they would on the app's own connection.
    const main = this.#main;
    Object.defineProperty(own, 'subscribers', { get: () => main.subscribers, configurable: true });
    this.#own = own;
    this.#besides = app;
    return own;
  }
}

/** The absolute path of the file a connection has open; undefined for an in-memory or temporary database. */
function fileOf(connection: SqliteDatabase): string | undefined {
  if (connection.memory) return undefined;
  const databases = connection.pragma('database_list') as Array<{ name: string; file: string }>;
  const file = databases.find((database) => database.name === 'main')?.file;
  return file === undefined || file === '' ? undefined : file;
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
