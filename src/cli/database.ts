import { existsSync } from 'node:fs';
import { DataSource, DriverPackageNotInstalledError, QueryFailedError, type DataSourceOptions } from 'typeorm';
import {
  dataSourceOptionsFromUrl,
  embeddedDatabaseUrl,
  redactUrl,
  resolveDatabaseUrl,
  SlotLockException,
  SlotLockService,
  sqlitePath,
} from '../index';
import { parseServerDatabaseUrl } from '../config/database-url';
import { SlotLockSessionError } from '../errors/slot-lock-session.error';
import { CliError } from './cli-error';
import { rememberPassword } from './hide-passwords';
import { cliTypeormLogger } from './typeorm-logger';
import { existingTableMessage } from './unrecorded-lock-table';
import { ENGINE_DRIVERS, engineOf } from './url-engine';

/** What every database subcommand gets: the URL in force, an initialized DataSource and the service on it. */
export interface CliDatabase {
  /** The URL tried (unredacted: pass it on, never print it; use {@link redactUrl}). */
  readonly url: string;
  readonly dataSource: DataSource;
  readonly slotLocks: SlotLockService;
}

/**
 * The URL in force: `--url`, else `SLOTLOCK_DATABASE_URL`, else the embedded SQLite
 * file (`embeddedDatabaseUrl()`), so the command works on a machine with no server.
 */
export function cliDatabaseUrl(urlOption: string | undefined): string {
  const url = resolveDatabaseUrl(urlOption, process.env, embeddedDatabaseUrl());
  rememberPassword(url);
  return url;
}

/**
 * TypeORM options for the URL; a URL that cannot be used is a {@link CliError} (exit 1)
 * naming it, the password hidden.
 */
export function cliDataSourceOptions(url: string): DataSourceOptions {
  try {
    return dataSourceOptionsFromUrl(url);
  } catch (error) {
    throw new CliError(`${messageOf(error)}; pass --url or set SLOTLOCK_DATABASE_URL`, undefined, { cause: error });
  }
}

/** Options of {@link withDatabase}. */
export interface WithDatabaseOptions {
  /**
   * SQLite: create the database file (and its folder) when it does not exist, as
   * `migrate` must. Without it a missing file is a {@link CliError} and nothing is
   * created: a command that finds no lock database has nothing to read or release, and
   * should not leave an empty file (or folder) behind.
   */
  readonly createSqliteFile?: boolean;
  /**
   * The command only reads (`held`, `locks`): an existing SQLite file is opened read-only
   * and as it is, so that looking changes nothing. Without it, TypeORM's `enableWAL` would
   * switch a rollback-journal database to WAL for good, and opening an empty file would
   * write a database header into it.
   */
  readonly readOnly?: boolean;
}

/**
 * Connects, runs `fn`, and closes the DataSource whatever happened, so the process
 * exits promptly. Database failures come out as one-line {@link CliError}s that name
 * the URL and say what to do; `fn`'s own errors (bad arguments, SlotLockException)
 * pass through unchanged.
 */
export async function withDatabase<T>(
  urlOption: string | undefined,
  fn: (db: CliDatabase) => Promise<T>,
  options: WithDatabaseOptions = {},
): Promise<T> {
  const url = cliDatabaseUrl(urlOption);
  let dataSourceOptions = cliDataSourceOptions(url);
  if (engineOf(url) === 'sqlite' && options.createSqliteFile !== true) assertSqliteFileExists(url);
  if (engineOf(url) === 'sqlite' && options.readOnly === true) dataSourceOptions = readOnlySqlite(dataSourceOptions);
  let dataSource: DataSource | undefined;
  let slotLocks: SlotLockService | undefined;
  try {
    // Inside the try: TypeORM loads the driver package here, and a missing one is described.
    dataSource = new DataSource({ ...dataSourceOptions, logger: cliTypeormLogger() });
    await dataSource.initialize();
    slotLocks = new SlotLockService(dataSource);
    return await fn({ url, dataSource, slotLocks });
  } catch (error) {
    throw describeDatabaseError(error, url);
  } finally {
    // The service's own SQLite connection first, then the DataSource it was opened beside.
    await slotLocks?.close().catch(() => undefined);
    if (dataSource?.isInitialized === true) await dataSource.destroy().catch(() => undefined);
  }
}

/**
 * SQLite options that leave the file as it is: no `enableWAL` (a read-only connection
 * reads a WAL database and a rollback-journal one alike), opened read-only. On a WAL
 * database whose `-wal` and `-shm` files are gone SQLite recreates them beside it (readers
 * need the shared memory index); the database file itself is never written.
 */
function readOnlySqlite(options: DataSourceOptions): DataSourceOptions {
  return { ...options, enableWAL: false, readonly: true } as DataSourceOptions;
}

/** A `sqlite:` URL whose file is missing is a {@link CliError} (TypeORM would create the file and its folder). */
function assertSqliteFileExists(url: string): void {
  const file = sqlitePath(url);
  if (!existsSync(file)) {
    throw new CliError(
      `no lock database at ${file}: the file does not exist; create it with \`slotlock migrate\` (same --url), ` +
        'or fix the URL',
    );
  }
}

/** The database a server URL names, decoded, as the driver gets it. */
export function databaseNameOf(url: string): string {
  return parseServerDatabaseUrl(url).database;
}

/** The same URL naming another database. */
export function withDatabaseName(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

/** The URL without its database, e.g. `mysql://root@127.0.0.1:3306/`. */
export function serverUrl(url: string): string {
  const parsed = new URL(url);
  parsed.pathname = '/';
  return parsed.toString();
}

/** mysql2's error fields, whether TypeORM wrapped the error (QueryFailedError) or not (connecting). */
interface DriverError {
  readonly code?: unknown;
  readonly errno?: unknown;
  readonly sqlMessage?: unknown;
  readonly message?: unknown;
}

/**
 * Turns a failure to reach or use the database into a one-line {@link CliError} that
 * names the URL (password hidden) and says what to do. Errors that are not the
 * database's (bad arguments, a held lock, a CliError already) are returned unchanged.
 */
export function describeDatabaseError(error: unknown, url: string): unknown {
  if (
    error instanceof CliError ||
    error instanceof SlotLockException ||
    error instanceof TypeError ||
    error instanceof RangeError
  ) {
    return error;
  }
  if (isMissingSessionTable(error)) {
    return new CliError(
      `the session table does not exist on ${redactUrl(url)}: create it with \`slotlock migrate\` (same --url)`,
      undefined,
      { cause: error },
    );
  }
  if (error instanceof DriverPackageNotInstalledError) {
    // TypeORM's own text ("Postgres package has not been found installed...") in our words.
    const missing = ENGINE_DRIVERS[engineOf(url)];
    return new CliError(`the ${missing.name} driver is not installed: npm install ${missing.packageName}`, undefined, {
      cause: error,
    });
  }
  const driver = (error instanceof QueryFailedError ? error.driverError : error) as DriverError | null | undefined;
  if (typeof driver !== 'object' || driver === null) return error;
  const code = typeof driver.code === 'string' ? driver.code : undefined;
  const errno = typeof driver.errno === 'number' ? driver.errno : undefined;
  const text = firstLine(
    typeof driver.sqlMessage === 'string'
      ? driver.sqlMessage
      : typeof driver.message === 'string'
        ? driver.message
        : '',
  );
  const where = redactUrl(url);
  const fail = (message: string): CliError => new CliError(message, undefined, { cause: error });
  const retry = 'pass --url or set SLOTLOCK_DATABASE_URL';

  // `?sslmode=` asked for TLS (see SSL_MODES): mysql2 says so with a code, pg in its message only.
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT' || /does not support SSL connections/i.test(text)) {
    return fail(
      `cannot connect to ${where}: the server does not support TLS, which sslmode asks for; ` +
        'enable TLS on the server, or use sslmode=disable',
    );
  }
  switch (code) {
    case 'ECONNREFUSED':
      return fail(`cannot connect to ${where}: connection refused (is the server running there?); ${retry}`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return fail(`cannot connect to ${where}: host ${JSON.stringify(hostOf(url))} not found; ${retry}`);
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ECONNRESET':
      return fail(`cannot connect to ${where}: ${text || code} (is the host reachable?); ${retry}`);
    case 'PROTOCOL_CONNECTION_LOST':
      return fail(`lost the connection to ${where}: ${text || code}; try again`);
    // PostgreSQL and SQLite URLs work too (dataSourceOptionsFromUrl): their missing table and database.
    case '42P01':
      return fail(`${text} (${where}): create the lock table with \`slotlock migrate\` (same --url)`);
    case '3D000':
      return fail(`${text} (${where}): create the database, or fix the URL`);
    case 'SQLITE_ERROR':
      if (/no such table/i.test(text)) {
        return fail(`${text} (${where}): create the lock table with \`slotlock migrate\` (same --url)`);
      }
      break;
  }
  switch (errno) {
    case 1045: // ER_ACCESS_DENIED_ERROR
    case 1698: // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
      return fail(`the server refused the login of ${where}: ${text}; check the user and password in the URL`);
    case 1044: // ER_DBACCESS_DENIED_ERROR
    case 1142: // ER_TABLEACCESS_DENIED_ERROR
    case 1227: // ER_SPECIFIC_ACCESS_DENIED_ERROR
      return fail(`permission denied on ${where}: ${text}; grant the user access, or use another user in the URL`);
    case 1049: // ER_BAD_DB_ERROR
      return fail(
        `database ${JSON.stringify(databaseNameOf(url))} does not exist on ${redactUrl(serverUrl(url))}: ` +
          'create it with `slotlock migrate --create-database` (same --url), or fix the URL',
      );
    case 1146: // ER_NO_SUCH_TABLE
      return fail(`${text} (${where}): create the lock table with \`slotlock migrate\` (same --url)`);
    case 1050: {
      // ER_TABLE_EXISTS_ERROR (`slotlock migrate` checks first: this is a table created meanwhile)
      const message = existingTableMessage(text, where);
      if (message !== undefined) return fail(message);
      break;
    }
  }
  if (code !== undefined || errno !== undefined) {
    return fail(`database error on ${where}: ${text || code || String(errno)}`);
  }
  return error;
}

/**
 * The service's error for a missing session table (`openSession`, `reapExpiredSessions`).
 */
export function isMissingSessionTable(error: unknown): boolean {
  return error instanceof SlotLockSessionError && error.problem === 'no-session-table';
}

function hostOf(url: string): string {
  try {
    return parseServerDatabaseUrl(url).host;
  } catch {
    return redactUrl(url);
  }
}

function messageOf(error: unknown): string {
  return firstLine(error instanceof Error ? error.message : String(error));
}

/** Driver messages can span lines; the command line prints one. */
export function firstLine(text: string): string {
  return (text.split(/\r?\n/).find((line) => line.trim() !== '') ?? '').trim();
}
