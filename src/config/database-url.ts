import { homedir } from 'node:os';
import * as path from 'node:path';
import type { DataSourceOptions } from 'typeorm';
import { slotLockEntity } from '../entities/slot-lock-entity';
import { slotLockMigrations, slotLockSessionMigrations } from '../migrations';

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

/** The URL schemes of database servers, and TypeORM's type for each. */
const SERVER_SCHEMES: ReadonlyMap<string, 'mysql' | 'postgres'> = new Map([
  ['mysql', 'mysql'],
  ['mariadb', 'mysql'],
  ['postgres', 'postgres'],
  ['postgresql', 'postgres'],
]);

/**
 * The one query parameter a server URL may carry, `sslmode`, and what each value means:
 * - `disable` (the default): no TLS;
 * - `verify-full`, or `require` (node-postgres reads `require` so today): TLS, the server's
 *   certificate verified against Node's trusted CAs (add yours with `NODE_EXTRA_CA_CERTS`)
 *   and its host name;
 * - `no-verify`: TLS, the certificate not verified (encrypted, but open to a man in the middle).
 * libpq's `prefer`, `allow` and `verify-ca` have no equivalent here and are refused.
 */
export const SSL_MODES = ['disable', 'require', 'verify-full', 'no-verify'] as const;

/** A value of {@link SSL_MODES}. */
export type SslMode = (typeof SSL_MODES)[number];

/**
 * A server URL read once, decoded: what the driver connects with. The command line (its
 * messages, `--create-database`) and TypeORM both use these parts, so they always mean
 * the same server, user and database.
 */
export interface ServerDatabaseUrl {
  readonly type: 'mysql' | 'postgres';
  /** The host name or address; an IPv6 address without its brackets (`::1`). */
  readonly host: string;
  /** `undefined`: the engine's default (3306, 5432). */
  readonly port: number | undefined;
  /** `undefined` when the URL has none (the driver's default applies). */
  readonly username: string | undefined;
  /** `undefined` when the URL has none. */
  readonly password: string | undefined;
  /** The database name, percent-decoded (`review%2Dx` is `review-x`). */
  readonly database: string;
  /** The URL's `?sslmode=`, see {@link SSL_MODES}. */
  readonly sslMode: SslMode | undefined;
}

/**
 * Reads a `mysql:`, `mariadb:`, `postgres:` or `postgresql:` URL into its parts, or throws
 * a `TypeError` (password hidden) that says what is wrong and how to write it. One parser
 * (WHATWG `URL`) decides every part; anything two parsers could read differently (a stray
 * `%`, an unencoded `@` or `/` in the password, a `#fragment`, a query parameter no one
 * reads) is refused rather than guessed.
 */
export function parseServerDatabaseUrl(url: string): ServerDatabaseUrl {
  const expected = '(expected mysql://user@host:port/database, postgres://…, or sqlite:path)';
  const shown = JSON.stringify(redactUrl(url));
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  // The scheme first: `foo://bar` is not "a URL without a database" but one of an engine we do not know.
  if (scheme === undefined) throw new TypeError(`not a database URL: ${shown} ${expected}`);
  const type = SERVER_SCHEMES.get(scheme);
  if (type === undefined) {
    throw new TypeError(
      `unsupported database URL scheme "${scheme}:" in ${redactUrl(url)} (supported: mysql:, mariadb:, postgres:, postgresql:, sqlite:)`,
    );
  }
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
  if (outsidePassword(url).includes('#')) {
    throw new TypeError(
      `the database URL ${shown} has a #fragment, which no database URL has: remove it ` +
        '(a # in the password or the database name is written %23)',
    );
  }
  const host = decodeURIComponent(parsed.hostname).replace(/^\[(.*)\]$/, '$1');
  if (host === '')
    throw new TypeError(`the database URL ${shown} names no host (e.g. mysql://user@127.0.0.1/database)`);
  const name = parsed.pathname.replace(/^\//, '');
  if (name === '') throw new TypeError(`the database URL ${redactUrl(url)} names no database (add /name at the end)`);
  if (name.includes('/')) {
    throw new TypeError(
      `the database URL ${shown} has a path of several parts: after the host comes the database name alone ` +
        '(a / in the name is written %2F)',
    );
  }
  return {
    type,
    host,
    port: parsed.port === '' ? undefined : Number(parsed.port),
    username: parsed.username === '' ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === '' ? undefined : decodeURIComponent(parsed.password),
    database: decodeURIComponent(name),
    sslMode: sslModeOf(parsed.searchParams, shown),
  };
}

/** The URL's `sslmode`, after refusing any other query parameter (drivers would ignore or read them differently). */
function sslModeOf(query: URLSearchParams, shown: string): SslMode | undefined {
  const names = [...query.keys()];
  const unknown = names.filter((name) => name !== 'sslmode');
  if (unknown.length > 0) {
    throw new TypeError(
      `the database URL ${shown} has query parameters slotlock does not read (${unknown.join(', ')}): ` +
        `remove them; the one it reads is sslmode=${SSL_MODES.join('|')}`,
    );
  }
  const values = query.getAll('sslmode');
  if (values.length === 0) return undefined;
  const value = values[0]!;
  if (values.length > 1 || !(SSL_MODES as readonly string[]).includes(value)) {
    throw new TypeError(
      `the database URL ${shown} has sslmode=${values.join('&sslmode=')}: give one of ${SSL_MODES.join(', ')} ` +
        '(verify-full and require: TLS with the certificate verified; no-verify: TLS without; disable: no TLS)',
    );
  }
  return value as SslMode;
}

/** TLS settings for the driver: mysql2 and pg both take Node's `tls` options under `ssl`. */
function sslOptions(type: 'mysql' | 'postgres', mode: SslMode | undefined): object | undefined {
  switch (mode) {
    case undefined:
    case 'disable':
      return undefined;
    case 'no-verify':
      return { rejectUnauthorized: false };
    case 'require':
    case 'verify-full':
      // pg checks the host name whenever it verifies; mysql2 only when asked to.
      return type === 'mysql' ? { rejectUnauthorized: true, verifyIdentity: true } : { rejectUnauthorized: true };
  }
}

/**
 * TypeORM connection options for a server URL's parts, on `database` (the URL's own, or
 * another; `undefined`: none, for MySQL's server-wide statements). No `url` goes to
 * TypeORM: it and the drivers would parse it again, by rules of their own.
 */
export function serverConnectionOptions(server: ServerDatabaseUrl, database: string | undefined): DataSourceOptions {
  const ssl = sslOptions(server.type, server.sslMode);
  return {
    type: server.type,
    host: server.host,
    ...(server.port === undefined ? {} : { port: server.port }),
    ...(server.username === undefined ? {} : { username: server.username }),
    ...(server.password === undefined ? {} : { password: server.password }),
    ...(database === undefined ? {} : { database }),
    ...(ssl === undefined ? {} : { ssl }),
  } as DataSourceOptions;
}

/**
 * TypeORM options for a database URL, with the package's entity and migrations:
 * - `mysql://user:password@host:port/database` or `mariadb://…`
 * - `postgres://user:password@host:port/database` or `postgresql://…`
 * - `sqlite:path/to/file.sqlite` (relative to the working directory) or `sqlite:///absolute/path.sqlite`,
 *   opened in WAL mode with a busy timeout so several processes can share it.
 *
 * Server URLs are read by {@link parseServerDatabaseUrl}: percent-decoded, an IPv6 host
 * in brackets (`[::1]`), at most one query parameter, `sslmode` (see {@link SSL_MODES}),
 * and no `#fragment`. Anything else is a `TypeError` that names the URL (its password
 * hidden).
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
      migrations: [...slotLockMigrations, ...slotLockSessionMigrations],
      synchronize: false,
    };
  }
  const server = parseServerDatabaseUrl(url);
  return {
    ...serverConnectionOptions(server, server.database),
    entities: [slotLockEntity(server.type)],
    migrations: [...slotLockMigrations, ...slotLockSessionMigrations],
    synchronize: false,
  } as DataSourceOptions;
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

/** The URL without its password (found as {@link passwordSpan} finds it), for checks that must not look inside it. */
function outsidePassword(url: string): string {
  const span = passwordSpan(url);
  return span === undefined ? url : url.slice(0, span.start) + url.slice(span.end);
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
