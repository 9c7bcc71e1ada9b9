import 'reflect-metadata';
import mysql, { type Pool, type RowDataPacket } from 'mysql2/promise';
import { DataSource, type Logger } from 'typeorm';
import { DrydockSlotLock, slotLockMigrations } from '../../../src';
import { BENCH_DATABASE, MYSQL_SERVER_URL, TABLE } from '../config';

/** ER_LOCK_DEADLOCK and ER_LOCK_WAIT_TIMEOUT: the errors the package retries. */
const CONTENTION_ERRNOS: ReadonlySet<number> = new Set([1213, 1205]);

export function isMysqlContention(error: unknown): boolean {
  const errno = (error as { errno?: unknown } | null)?.errno;
  return typeof errno === 'number' && CONTENTION_ERRNOS.has(errno);
}

export const MYSQL_BENCH_URL = `${MYSQL_SERVER_URL}/${BENCH_DATABASE}`;

/** Drops and creates the bench database on `serverUrl`, so every run starts from nothing. */
export async function recreateMysqlDatabase(serverUrl: string = MYSQL_SERVER_URL): Promise<void> {
  const admin = await mysql.createConnection({ uri: serverUrl });
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${BENCH_DATABASE}\``);
    await admin.query(`CREATE DATABASE \`${BENCH_DATABASE}\``);
  } finally {
    await admin.end();
  }
}

/** A TypeORM DataSource on the bench database (of `url`), as an app would open it (type 'mysql'). */
export async function openMysqlDataSource(
  poolSize: number,
  logger: Logger,
  migrate = true,
  url: string = MYSQL_BENCH_URL,
): Promise<DataSource> {
  const dataSource = new DataSource({
    type: 'mysql',
    url,
    entities: [DrydockSlotLock],
    migrations: [...slotLockMigrations],
    poolSize,
    logger,
  });
  await dataSource.initialize();
  if (migrate) await dataSource.runMigrations();
  return dataSource;
}

export function openMysqlPool(connectionLimit: number, url: string = MYSQL_BENCH_URL): Pool {
  return mysql.createPool({ uri: url, connectionLimit });
}

export async function mysqlVersion(pool: Pool): Promise<string> {
  const [rows] = await pool.query<RowDataPacket[]>('SELECT VERSION() AS version');
  return String(rows[0]?.['version']);
}

export async function mysqlRowCount(pool: Pool, table: string = TABLE): Promise<number> {
  const [rows] = await pool.query<RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${table}\``);
  return Number(rows[0]?.['n']);
}

export async function truncateMysql(pool: Pool, table: string = TABLE): Promise<void> {
  await pool.query(`TRUNCATE TABLE \`${table}\``);
}
