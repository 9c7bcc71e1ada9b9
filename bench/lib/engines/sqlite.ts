import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DataSource, type Logger } from 'typeorm';
import { SQLITE_BUSY_TIMEOUT_MS, dataSourceOptionsFromUrl } from '../../../src';
import { TABLE } from '../config';

export function isSqliteContention(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** A fresh temporary directory holding the bench's database file; `remove` deletes it. */
export function temporarySqliteFile(): { file: string; remove: () => void } {
  const directory = mkdtempSync(path.join(os.tmpdir(), 'slotlock-bench-'));
  return {
    file: path.join(directory, 'slotlock.sqlite'),
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

/**
 * The package's side, opened exactly as the package's own `sqlite:` URLs open it:
 * WAL mode and a busy timeout of SQLITE_BUSY_TIMEOUT_MS.
 */
export async function openSqliteDataSource(file: string, logger: Logger): Promise<DataSource> {
  const options = dataSourceOptionsFromUrl(`sqlite://${file}`);
  const dataSource = new DataSource({ ...options, logger });
  await dataSource.initialize();
  await dataSource.runMigrations();
  return dataSource;
}

/** The raw side: better-sqlite3 on the same file, the same WAL mode and busy timeout. */
export function openRawSqlite(file: string): Database.Database {
  const db = new Database(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  db.pragma('journal_mode = WAL');
  return db;
}

export function sqliteVersion(db: Database.Database): string {
  const row = db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
  return row.v;
}

/** `PRAGMA synchronous` of a connection: 2 = FULL (fsync at every commit), 1 = NORMAL. */
export function sqliteSynchronous(db: Database.Database): number {
  return Number(db.pragma('synchronous', { simple: true }));
}

export function sqliteRowCount(db: Database.Database): number {
  const row = db.prepare(`SELECT COUNT(*) AS n FROM "${TABLE}"`).get() as { n: number };
  return row.n;
}

/** Empties the table and folds the WAL back into the file, so each slice starts alike. */
export function resetSqlite(db: Database.Database): void {
  db.prepare(`DELETE FROM "${TABLE}"`).run();
  db.pragma('wal_checkpoint(TRUNCATE)');
}
