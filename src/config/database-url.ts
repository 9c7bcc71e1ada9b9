import { homedir } from 'node:os';
import * as path from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { slotLockEntity } from '../entities/slot-lock-entity';
import { slotLockMigrations } from '../migrations';

/** The MariaDB database `ormconfig.ts` uses when `SLOTLOCK_DATABASE_URL` is not set. */
export const DEFAULT_DATABASE_URL = 'mysql://root@127.0.0.1:3306/slotlock';

/** The environment variable that names the database. */
export const DATABASE_URL_ENV = 'SLOTLOCK_DATABASE_URL';

/** Busy timeout of the embedded SQLite database: how long a writer waits for another process. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/**
 * The embedded SQLite database the `slotlock` command uses when no URL is given:
 * `$XDG_DATA_HOME/drydock-slotlock/slotlock.sqlite` (by default
 * `~/.local/share/drydock-slotlock/slotlock.sqlite`), one per user and host, so that
 * every `slotlock` run of that user shares it whatever its working directory. An empty or
 * relative `XDG_DATA_HOME` counts as unset, as the XDG Base Directory spec says: either
 * would make the file depend on the working directory.
 */
export function embeddedDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const xdgDataHome = env.XDG_DATA_HOME;
  const dataHome =
    xdgDataHome !== undefined && path.isAbsolute(xdgDataHome) ? xdgDataHome : path.join(homedir(), '.local', 'share');
  return `sqlite:${path.join(dataHome, 'drydock-slotlock', 'slotlock.sqlite')}`;
}

/** The URL in force: the argument, else `SLOTLOCK_DATABASE_URL`, else `fallback`. */
export function resolveDatabaseUrl(
  url?: string,
  env: NodeJS.ProcessEnv = process.env,
  fallback: string = DEFAULT_DATABASE_URL,
): string {
  return url ?? env[DATABASE_URL_ENV] ?? fallback;
}

/** What to do about a URL whose user name or password holds characters that must be encoded. */
const PERCENT_ENCODE =
  'percent-encode special characters of the user name and password (encodeURIComponent): ' +
  '/ as %2F, % as %25, @ as %40, : as %3A, ? as %3F, # as %23';

/**
 * Parses a server URL as TypeORM and the drivers will, or throws a `TypeError` (password
 * hidden) that says how to write it. TypeORM splits the URL with its own rules (and
 * `decodeURIComponent`s the user and password: a stray `%` threw "URI malformed"); pg parses
 * it again. Refusing what they could read differently keeps every reading the same.
 */
function parseServerUrl(url: string, expected: string): URL {
  const shown = JSON.stringify(redactUrl(url));
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) throw new TypeError(`not a database URL: ${shown} ${expected}`);
  try {
    decodeURIComponent(url);
  } catch {
    throw new TypeError(
      `the database URL ${shown} holds a % that does not start a valid %XX escape: ${PERCENT_ENCODE}`,
    );
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`not a database URL: ${shown} ${expected}; ${PERCENT_ENCODE}`);
  }
  // An '@' after the host means the host was cut short: a '/', '?' or '#' in the password.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) {
    throw new TypeError(`the database URL ${shown} has an '@' after its host: ${PERCENT_ENCODE}`);
  }
  return parsed;
}

/** The URL schemes of database servers, and TypeORM's type for each. */
const SERVER_SCHEMES: ReadonlyMap<string, 'mysql' | 'postgres'> = new Map([
  ['mysql', 'mysql'],
  ['mariadb', 'mysql'],
  ['postgres', 'postgres'],
  ['postgresql', 'postgres'],
]);

/**
 * TypeORM options for a database URL, with the package's entity and migrations:
 * - `mysql://user:password@host:port/database` or `mariadb://…`
 * - `postgres://user:password@host:port/database` or `postgresql://…`
 * - `sqlite:path/to/file.sqlite` (relative to the working directory) or `sqlite:///absolute/path.sqlite`,
 *   opened in WAL mode with a busy timeout so several processes can share it.
 *
 * Anything else is a `TypeError` that names the URL (its password hidden).
 */
export function dataSourceOptionsFromUrl(url: string): DataSourceOptions {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'sqlite') {
    const file = sqlitePath(url);
    return {
      type: 'better-sqlite3',
      database: file,
      enableWAL: true,
      timeout: SQLITE_BUSY_TIMEOUT_MS,
      entities: [slotLockEntity('better-sqlite3')],
      migrations: [...slotLockMigrations],
      synchronize: false,
    };
  }
  const expected = '(expected mysql://user@host:port/database, postgres://…, or sqlite:path)';
  // The scheme first: `foo://bar` is not "a URL without a database" but one of an engine we do not know.
  if (scheme === undefined) throw new TypeError(`not a database URL: ${JSON.stringify(redactUrl(url))} ${expected}`);
  const type = SERVER_SCHEMES.get(scheme);
  if (type === undefined) {
    throw new TypeError(
      `unsupported database URL scheme "${scheme}:" in ${redactUrl(url)} (supported: mysql:, mariadb:, postgres:, postgresql:, sqlite:)`,
    );
  }
  const parsed = parseServerUrl(url, expected);
  if (parsed.pathname.replace(/^\//, '') === '') {
    throw new TypeError(`the database URL ${redactUrl(url)} names no database (add /name at the end)`);
  }
  return { type, entities: [slotLockEntity(type)], url, migrations: [...slotLockMigrations], synchronize: false };
}

/** The file of a `sqlite:` URL. */
export function sqlitePath(url: string): string {
  const rest = url.slice('sqlite:'.length); // whatever the scheme's case
  const file = rest.startsWith('//') ? rest.slice(2) : rest;
  if (file === '')
    throw new TypeError(`the database URL ${JSON.stringify(url)} names no file (sqlite:path/to/file.sqlite)`);
  return path.resolve(file);
}

/**
 * Where the password of a URL is, found in its text alone: from the first `:` after
 * `scheme://` up to the LAST `@`. Unencoded `/`, `?`, `#` or `@` in a password make a URL
 * that parsers split elsewhere (or refuse), so no parser decides it; when the path holds an
 * `@` too, this takes more than the password, which is the safe side to err on.
 */
function passwordSpan(url: string): { start: number; end: number } | undefined {
  if (/^sqlite:/i.test(url)) return undefined; // a file path: no credentials, and ':' or '@' are just characters
  const afterScheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0].length ?? 0;
  const at = url.lastIndexOf('@');
  const colon = url.indexOf(':', afterScheme);
  if (at <= afterScheme || colon === -1 || colon > at) return undefined;
  return { start: colon + 1, end: at };
}

/** `?password=…` and the like: drivers such as pg read credentials from the query too. */
const QUERY_PASSWORD = /([?&](?:password|passwd|pwd|pass|sslpassword)=)[^&#]*/gi;

/**
 * The password of a URL as written (still percent-encoded), or `undefined`; see
 * {@link redactUrl} for how it is found in any text, a valid URL or not.
 */
export function passwordOfUrl(url: string): string | undefined {
  const span = passwordSpan(url);
  return span === undefined ? undefined : url.slice(span.start, span.end);
}

/**
 * The URL with its password replaced by `***`, for messages and logs. It works on the
 * text, so it holds for any string, a valid URL or not (a password with an unencoded
 * `/`, `@`, `%`, `:`, `#` or `?` included), and hides `password=` query parameters too.
 */
export function redactUrl(url: string): string {
  const span = passwordSpan(url);
  const redacted = span === undefined ? url : `${url.slice(0, span.start)}***${url.slice(span.end)}`;
  return redacted.replace(QUERY_PASSWORD, '$1***');
}
