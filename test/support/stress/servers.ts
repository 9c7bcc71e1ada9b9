/**
 * The database servers the stress tests use, and how to start and stop the ones they
 * own. The main server (3306) is shared with everyone's tests and only gets databases of
 * its own; the fault tests stop and crash a throwaway server (scripts/scratch-mariadb.sh),
 * and the cluster tests run on a three-node Galera cluster (scripts/galera.sh).
 */
import 'reflect-metadata';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { dataSourceOptionsFromUrl } from '../../../src';
import { MYSQL_SERVER_URL } from '../database';

/** The repository's root. */
export const REPO_ROOT = path.join(__dirname, '..', '..', '..');

/** The main MariaDB server (shared: never stopped, never reconfigured). */
export const MAIN_SERVER_URL = MYSQL_SERVER_URL;

/** The throwaway server of scripts/scratch-mariadb.sh. */
export const SCRATCH_SERVER_URL = `mysql://root@127.0.0.1:${process.env.SLOTLOCK_SCRATCH_PORT ?? '3320'}`;

/** The three nodes of scripts/galera.sh. */
export const GALERA_NODE_URLS: readonly string[] = [3311, 3312, 3313].map((port) => `mysql://root@127.0.0.1:${port}`);

/** Runs `bash scripts/<script> <args>` and resolves once it exits 0 (rejects with its output otherwise). */
export function runScript(script: string, args: readonly string[], timeoutMs = 240_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [path.join(REPO_ROOT, 'scripts', script), ...args],
      { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error !== null) {
          reject(new Error(`scripts/${script} ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
        } else {
          resolve(`${stdout}${stderr}`);
        }
      },
    );
  });
}

/** scripts/scratch-mariadb.sh, one function per command. */
export const scratchMariadb = {
  start: (): Promise<string> => runScript('scratch-mariadb.sh', ['start']),
  /** Clean shutdown (SIGTERM); the data stays. */
  stop: (): Promise<string> => runScript('scratch-mariadb.sh', ['stop']),
  /** SIGKILL, as a power cut; the data stays. */
  crash: (): Promise<string> => runScript('scratch-mariadb.sh', ['crash']),
  /** Stops the server and deletes its files. */
  destroy: (): Promise<string> => runScript('scratch-mariadb.sh', ['destroy']),
};

/** scripts/galera.sh, one function per command. */
export const galeraCluster = {
  start: (): Promise<string> => runScript('galera.sh', ['start']),
  stop: (): Promise<string> => runScript('galera.sh', ['stop']),
};

/** `mysql://root@host:port` + `/database`. */
export function databaseUrl(serverUrl: string, database: string): string {
  return `${serverUrl}/${database}`;
}

/** Runs `fn` on a connection to `serverUrl` that has chosen no database. */
export async function withServer<T>(serverUrl: string, fn: (admin: DataSource) => Promise<T>): Promise<T> {
  const admin = new DataSource({ type: 'mysql', url: `${serverUrl}/mysql` });
  await admin.initialize();
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

/**
 * Drops and re-creates `database` on `serverUrl`, runs the package's migration there, and
 * runs `extraDdl` (the tests' own tables). On Galera, DDL replicates to every node.
 */
export async function prepareDatabase(
  serverUrl: string,
  database: string,
  extraDdl: readonly string[] = [],
): Promise<void> {
  await withServer(serverUrl, async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.query(`CREATE DATABASE \`${database}\``);
  });
  const dataSource = await openDataSource(databaseUrl(serverUrl, database));
  try {
    await dataSource.runMigrations();
    for (const ddl of extraDdl) await dataSource.query(ddl);
  } finally {
    await dataSource.destroy();
  }
}

/** An initialized DataSource on a database URL, configured as users configure one. */
export async function openDataSource(url: string, extra: Partial<DataSourceOptions> = {}): Promise<DataSource> {
  const dataSource = new DataSource({ ...dataSourceOptionsFromUrl(url), ...extra } as DataSourceOptions);
  await dataSource.initialize();
  return dataSource;
}

/**
 * A DataSource whose pool already holds `poolSize` open connections, so a race starts
 * racing instead of connecting.
 */
export async function openWarmDataSource(url: string, poolSize: number): Promise<DataSource> {
  const dataSource = await openDataSource(url, { poolSize });
  await Promise.all(Array.from({ length: poolSize }, () => dataSource.query('SELECT 1')));
  return dataSource;
}

/** Galera's counters of one node, for the report. */
export async function galeraCounters(dataSource: DataSource): Promise<Record<string, number>> {
  const rows = (await dataSource.query(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_cert_failures', 'wsrep_local_bf_aborts', " +
      "'wsrep_local_commits', 'wsrep_cluster_size', 'Innodb_deadlocks')",
  )) as Array<{ Variable_name: string; Value: string }>;
  return Object.fromEntries(rows.map((row) => [row.Variable_name, Number(row.Value)]));
}
