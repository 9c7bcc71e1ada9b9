/** The engine a database URL names. */
export type UrlEngine = 'mysql' | 'postgres' | 'sqlite';

/** The engine of a URL that `dataSourceOptionsFromUrl` accepted. */
export function engineOf(url: string): UrlEngine {
  if (/^sqlite:/i.test(url)) return 'sqlite';
  return /^postgres(ql)?:/i.test(url) ? 'postgres' : 'mysql';
}

/**
 * Each engine's driver, as messages name it, and the npm package TypeORM loads for it. Only
 * mysql2 is sure to be there (SPEC 8: the others are optional peers).
 */
export const ENGINE_DRIVERS: Readonly<Record<UrlEngine, { readonly name: string; readonly packageName: string }>> =
  Object.freeze({
    mysql: { name: 'MySQL/MariaDB', packageName: 'mysql2' },
    postgres: { name: 'PostgreSQL', packageName: 'pg' },
    sqlite: { name: 'SQLite', packageName: 'better-sqlite3' },
  });
