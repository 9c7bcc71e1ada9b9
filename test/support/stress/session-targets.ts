/**
 * Where the session stress test runs (MariaDB, PostgreSQL, SQLite, a three-node Galera
 * cluster), and the few statements on the session table it needs that the service does
 * not offer: reading a session's expiry by the server's clock, deleting a session's row
 * under it, planting a dead session.
 */
import type { DataSource } from 'typeorm';
import { Like } from 'typeorm';
import { DrydockSlotLock, SlotLockService } from '../../../src';
import { ENGINES, freshEngineDataSource } from '../engines';
import { GALERA_NODE_URLS, databaseUrl, galeraCluster, openDataSource, prepareDatabase } from './servers';

export type TargetName = 'mariadb' | 'postgres' | 'sqlite' | 'galera';

/** The single-server engines the suite selects (SLOTLOCK_TEST_ENGINES), then the cluster. */
export const TARGET_NAMES: readonly TargetName[] = [...ENGINES.map((engine) => engine.name), 'galera'];

const LABEL = 'stress_sessions';
const GALERA_DATABASE = 'slotlock_stress_sessions';

/** A database the children share, and the parent's own connections to it. */
export interface SessionTarget {
  readonly name: TargetName;
  /** Where holders connect (Galera: node 1). */
  readonly holderUrl: string;
  /** Where waiters connect (Galera: node 2). */
  readonly waiterUrl: string;
  /** Every node's URL (one for a single server). */
  readonly urls: readonly string[];
  /** The parent's DataSource on `holderUrl`, and a service on it. */
  readonly admin: DataSource;
  readonly service: SlotLockService;
  /** The parent's DataSource on `waiterUrl` (Galera: node 2; else `admin`), and a service on it. */
  readonly other: DataSource;
  readonly otherService: SlotLockService;
  close(): Promise<void>;
}

/** Prepares a fresh, migrated database on `name` (starting the Galera cluster for 'galera'). */
export async function openTarget(name: TargetName): Promise<SessionTarget> {
  let urls: string[];
  let admin: DataSource;
  if (name === 'galera') {
    await galeraCluster.start();
    await prepareDatabase(GALERA_NODE_URLS[0]!, GALERA_DATABASE);
    urls = GALERA_NODE_URLS.map((server) => databaseUrl(server, GALERA_DATABASE));
    admin = await openDataSource(urls[0]!);
    // DDL replicates in total order: every node has both tables before anyone starts.
    for (const url of urls.slice(1)) {
      const node = await openDataSource(url, { poolSize: 1 });
      await node.query('SELECT COUNT(*) FROM drydock_slotlock, drydock_slotlock_session');
      await node.destroy();
    }
  } else {
    const engine = ENGINES.find((each) => each.name === name);
    if (engine === undefined) throw new Error(`${name} is not among SLOTLOCK_TEST_ENGINES`);
    admin = await freshEngineDataSource(engine, LABEL);
    urls = [engine.url(LABEL)];
  }
  const other = urls[1] === undefined ? admin : await openDataSource(urls[1]);
  const service = new SlotLockService(admin);
  const otherService = other === admin ? service : new SlotLockService(other);
  return {
    name,
    holderUrl: urls[0]!,
    waiterUrl: urls[1] ?? urls[0]!,
    urls,
    admin,
    service,
    other,
    otherService,
    async close() {
      await otherService.close();
      await service.close();
      if (other !== admin) await other.destroy();
      await admin.destroy();
    },
  };
}

type Flavour = 'mysql' | 'postgres' | 'sqlite';

function flavourOf(dataSource: DataSource): Flavour {
  const type = dataSource.options.type;
  if (type === 'mysql' || type === 'mariadb') return 'mysql';
  if (type === 'postgres') return 'postgres';
  if (type === 'better-sqlite3') return 'sqlite';
  throw new Error(`no session SQL for DataSource type ${type}`);
}

/** The server's clock in milliseconds since 1970, as the package's dialects read it. */
const NOW_MS: Record<Flavour, string> = {
  mysql: "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)",
  postgres: '(extract(epoch from clock_timestamp()) * 1000)::bigint',
  sqlite: "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
};

function sessionSql(dataSource: DataSource): { flavour: Flavour; q: (column: string) => string; p: string } {
  const flavour = flavourOf(dataSource);
  return {
    flavour,
    q: (column) => (flavour === 'mysql' ? `\`${column}\`` : `"${column}"`),
    p: flavour === 'postgres' ? '$1' : '?',
  };
}

/**
 * The session row of `owner`: when it may be reaped and the server's clock now, both in
 * milliseconds since 1970 (one machine, so comparable with `Date.now()`); undefined when
 * there is no row.
 */
export async function sessionExpiry(
  dataSource: DataSource,
  owner: string,
): Promise<{ expiresAt: number; now: number } | undefined> {
  const { flavour, q, p } = sessionSql(dataSource);
  const rows = (await dataSource.query(
    `SELECT ${q('expiresAt')} AS ${q('expiresAt')}, ${NOW_MS[flavour]} AS ${q('now')} ` +
      `FROM ${q('drydock_slotlock_session')} WHERE ${q('ownerPHID')} = ${p}`,
    [owner],
  )) as Array<{ expiresAt: string | number; now: string | number }>;
  const row = rows[0];
  return row === undefined ? undefined : { expiresAt: Number(row.expiresAt), now: Number(row.now) };
}

/** Deletes `owner`'s session row, and nothing else (as a session closed elsewhere would). */
export async function deleteSessionRow(dataSource: DataSource, owner: string): Promise<void> {
  const { q, p } = sessionSql(dataSource);
  await dataSource.query(`DELETE FROM ${q('drydock_slotlock_session')} WHERE ${q('ownerPHID')} = ${p}`, [owner]);
}

/** Writes a session row for `owner` that expired long ago: its locks belong to a dead process. */
export async function plantDeadSessionRow(dataSource: DataSource, owner: string): Promise<void> {
  const { flavour, q } = sessionSql(dataSource);
  const params = flavour === 'postgres' ? '$1, $2, $3, $4' : '?, ?, ?, ?';
  await dataSource.query(
    `INSERT INTO ${q('drydock_slotlock_session')} (${q('ownerPHID')}, ${q('token')}, ${q('ttlMs')}, ${q('expiresAt')}) ` +
      `VALUES (${params})`,
    [owner, 'planted', 1000, 1],
  );
}

/** Session rows in all. */
export async function sessionRowCount(dataSource: DataSource): Promise<number> {
  const { q } = sessionSql(dataSource);
  const rows = (await dataSource.query(`SELECT COUNT(*) AS n FROM ${q('drydock_slotlock_session')}`)) as Array<{
    n: string | number;
  }>;
  return Number(rows[0]!.n);
}

/** Lock rows whose owner starts with `prefix`. */
export function countOwnedWithPrefix(dataSource: DataSource, prefix: string): Promise<number> {
  return dataSource.getRepository(DrydockSlotLock).countBy({ ownerPHID: Like(`${prefix}%`) });
}

/** Who holds `key` now, read through `service` (undefined when free). */
export async function holderOf(service: SlotLockService, key: string): Promise<string | undefined> {
  const held = await service.loadHeldLocks([key]);
  return held.find((lock) => lock.lockKey === key)?.ownerPHID;
}

/** Empties both tables. */
export async function clearTables(dataSource: DataSource): Promise<void> {
  const { q } = sessionSql(dataSource);
  await dataSource.query(`DELETE FROM ${q('drydock_slotlock')}`);
  await dataSource.query(`DELETE FROM ${q('drydock_slotlock_session')}`);
}
