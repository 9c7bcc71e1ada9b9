import type { DataSourceOptions } from 'typeorm';
import { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';
import { slotLockMigrations } from '../migrations';

/** The database the command line and `ormconfig.ts` use when no URL is given. */
export const DEFAULT_DATABASE_URL = 'mysql://root@127.0.0.1:3306/slotlock';

/** The environment variable that names the database. */
export const DATABASE_URL_ENV = 'SLOTLOCK_DATABASE_URL';

/** The URL in force: the argument, else `SLOTLOCK_DATABASE_URL`, else {@link DEFAULT_DATABASE_URL}. */
export function resolveDatabaseUrl(url?: string, env: NodeJS.ProcessEnv = process.env): string {
  return url ?? env[DATABASE_URL_ENV] ?? DEFAULT_DATABASE_URL;
}

/**
 * TypeORM options for a database URL, with the package's entity and migrations.
 * `mysql://` and `mariadb://` are accepted; anything else is a `TypeError` naming the URL.
 */
export function dataSourceOptionsFromUrl(url: string): DataSourceOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(
      `not a database URL: ${JSON.stringify(url)} (expected mysql://user:password@host:port/database)`,
    );
  }
  const scheme = parsed.protocol.replace(/:$/, '');
  if (scheme !== 'mysql' && scheme !== 'mariadb') {
    throw new TypeError(
      `unsupported database URL scheme "${scheme}:" in ${redactUrl(url)} (supported: mysql:, mariadb:)`,
    );
  }
  if (parsed.pathname.replace(/^\//, '') === '') {
    throw new TypeError(`the database URL ${redactUrl(url)} names no database (add /name at the end)`);
  }
  return {
    type: 'mysql',
    url,
    entities: [DrydockSlotLock],
    migrations: [...slotLockMigrations],
    synchronize: false,
  };
}

/** The URL with its password replaced by `***`, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
