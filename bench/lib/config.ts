/** Settings shared by every benchmark, from the environment where a tunable. */

/** A positive integer from the environment, or `fallback` when unset. */
export function positiveIntFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer`);
  return value;
}

/** MariaDB server, without a database part. */
export const MYSQL_SERVER_URL = process.env.SLOTLOCK_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
/** PostgreSQL server, without a database part. */
export const POSTGRES_SERVER_URL = process.env.SLOTLOCK_BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432';
export const REDIS_URL = process.env.SLOTLOCK_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The database the benchmarks drop and create on MariaDB and PostgreSQL: never the app's own. */
export const BENCH_DATABASE = 'slotlock_bench';
/** The package's default table name, as Phorge names it. */
export const TABLE = 'drydock_slotlock';
