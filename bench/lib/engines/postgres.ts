import 'reflect-metadata';
import { Client, Pool } from 'pg';
import { DataSource, type Logger } from 'typeorm';
import { slotLockEntity, slotLockMigrations } from '../../../src';
import { BENCH_DATABASE, POSTGRES_SERVER_URL, TABLE } from '../config';

/** deadlock_detected, serialization_failure, lock_not_available: what the package retries. */
const CONTENTION_CODES: ReadonlySet<string> = new Set(['40P01', '40001', '55P03']);

export function isPostgresContention(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONTENTION_CODES.has(code);
}

export const POSTGRES_BENCH_URL = `${POSTGRES_SERVER_URL}/${BENCH_DATABASE}`;

/** Drops and creates the bench database (closing other sessions on it first). */
export async function recreatePostgresDatabase(): Promise<void> {
  const admin = new Client({ connectionString: `${POSTGRES_SERVER_URL}/postgres` });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${BENCH_DATABASE}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${BENCH_DATABASE}"`);
  } finally {
    await admin.end();
  }
}

export async function openPostgresDataSource(poolSize: number, logger: Logger): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: POSTGRES_BENCH_URL,
    entities: [slotLockEntity('postgres')],
    migrations: [...slotLockMigrations],
    poolSize,
    logger,
  });
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

export function openPgPool(max: number): Pool {
  return new Pool({ connectionString: POSTGRES_BENCH_URL, max });
}

export async function postgresVersion(pool: Pool): Promise<string> {
  const result = await pool.query<{ server_version: string }>('SHOW server_version');
  return String(result.rows[0]?.server_version);
}

export async function postgresRowCount(pool: Pool): Promise<number> {
  const result = await pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM "${TABLE}"`);
  return Number(result.rows[0]?.n);
}

export async function truncatePostgres(pool: Pool): Promise<void> {
  await pool.query(`TRUNCATE TABLE "${TABLE}"`);
}
