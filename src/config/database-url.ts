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
 * every `slotlock` run of that user shares it whatever its working directory.
 */
export function embeddedDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const dataHome = env.XDG_DATA_HOME ?? path.join(homedir(), '.local', 'share');
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
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`not a database URL: ${JSON.stringify(redactUrl(url))} ${expected}`);
  }
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

/** The URL with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@/]*@/, '//$1:***@');
  }
}
