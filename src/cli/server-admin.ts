import { existsSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { redactUrl, sqlitePath } from '../index';
import { parseServerDatabaseUrl, serverConnectionOptions } from '../config/database-url';
import { describeDatabaseError, databaseNameOf, serverUrl, withDatabaseName } from './database';
import { engineOf, type UrlEngine } from './url-engine';
import { driverErrorOf } from '../errors/driver-error-of';

function quote(engine: UrlEngine, name: string): string {
  return engine === 'mysql' ? '`' + name.replace(/`/g, '``') + '`' : '"' + name.replace(/"/g, '""') + '"';
}

/**
 * Connects to the server of `url` without its database (MySQL: none; PostgreSQL: the
 * `postgres` maintenance database), runs `fn` and disconnects.
 */
async function withServer<T>(url: string, fn: (server: DataSource, engine: UrlEngine) => Promise<T>): Promise<T> {
  const engine = engineOf(url);
  let server: DataSource | undefined;
  try {
    // Inside the try: TypeORM loads the driver here, and a missing one is described like any failure.
    // The URL's own parts (the same reading as the migration's DataSource), on another database.
    server = new DataSource(
      serverConnectionOptions(parseServerDatabaseUrl(url), engine === 'postgres' ? 'postgres' : undefined),
    );
    await server.initialize();
    return await fn(server, engine);
  } catch (error) {
    throw describeDatabaseError(error, url);
  } finally {
    if (server?.isInitialized === true) await server.destroy().catch(() => undefined);
  }
}

/**
 * Creates the database of `url` when it is missing (a SQLite file is created on first
 * use anyway). Resolves to a line saying what was done, or `undefined` when the database
 * was there. Idempotent under concurrency: several runs at once (replicas starting
 * together) can all see it missing; whichever creates it, every run succeeds.
 */
export async function ensureDatabase(url: string): Promise<string | undefined> {
  if (engineOf(url) === 'sqlite') return undefined;
  const name = databaseNameOf(url);
  return withServer(url, async (server, engine) => {
    const exists =
      engine === 'postgres'
        ? ((await server.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])) as unknown[]).length > 0
        : ((await server.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name])) as unknown[])
            .length > 0;
    if (exists) return undefined;
    const created = await createDatabaseIfMissing(server, engine, name);
    return created ? `created database ${JSON.stringify(name)} on ${redactUrl(serverUrl(url))}` : undefined;
  });
}

/** `CREATE DATABASE` that treats "another run created it meanwhile" as done; resolves to whether this one created it. */
async function createDatabaseIfMissing(server: DataSource, engine: UrlEngine, name: string): Promise<boolean> {
  if (engine === 'mysql') {
    // IF NOT EXISTS: a database created meanwhile is a warning (1007), not an error.
    const result = (await server.query(`CREATE DATABASE IF NOT EXISTS ${quote(engine, name)}`)) as {
      warningStatus?: unknown;
    } | null;
    return !(typeof result?.warningStatus === 'number' && result.warningStatus > 0);
  }
  try {
    // PostgreSQL has no CREATE DATABASE IF NOT EXISTS.
    await server.query(`CREATE DATABASE ${quote(engine, name)}`);
    return true;
  } catch (error) {
    if (createdMeanwhile(error)) return false;
    throw error;
  }
}

/**
 * Whether a PostgreSQL CREATE DATABASE failed because another session created the same
 * database: 42P04 (duplicate_database) once that one has committed, or 23505 on
 * pg_database's unique name index while both were inserting their row.
 */
function createdMeanwhile(error: unknown): boolean {
  const driver = driverErrorOf(error) as { code?: unknown; constraint?: unknown } | undefined;
  return driver?.code === '42P04' || (driver?.code === '23505' && driver.constraint === 'pg_database_datname_index');
}

/**
 * Drops and re-creates the database `name` next to the one `url` names, and resolves
 * to its URL: a database on the same MySQL or PostgreSQL server, or for SQLite a file
 * `name.sqlite` in the same folder.
 */
export async function recreateDatabase(url: string, name: string): Promise<string> {
  if (engineOf(url) === 'sqlite') {
    const file = path.join(path.dirname(sqlitePath(url)), `${name}.sqlite`);
    mkdirSync(path.dirname(file), { recursive: true });
    for (const suffix of ['', '-wal', '-shm']) if (existsSync(file + suffix)) rmSync(file + suffix);
    return `sqlite:${file}`;
  }
  const target = withDatabaseName(url, name);
  await withServer(url, async (server, engine) => {
    await server.query(`DROP DATABASE IF EXISTS ${quote(engine, name)}${engine === 'postgres' ? ' WITH (FORCE)' : ''}`);
    await server.query(`CREATE DATABASE ${quote(engine, name)}`);
  });
  return target;
}

/** Where the demo's database is, for people: a server URL (password hidden) or a file. */
export function describeLocation(url: string): string {
  return engineOf(url) === 'sqlite' ? sqlitePath(url) : redactUrl(serverUrl(url));
}
