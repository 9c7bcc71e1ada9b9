/**
 * Not a test: prints, for the cell's TypeORM, what the service reaches under TypeORM's
 * public API on each engine (the driver's pool or connection, the shared SQLite runner,
 * how errors come out of a query runner), so that the matrix shows where TypeORM 0.3 and
 * 1.x differ. One line per engine; the matrix collects them into its summary.
 */
import 'reflect-metadata';
import { DataSource, QueryFailedError, type DataSourceOptions } from 'typeorm';

const ENGINES: Array<[engine: string, options: DataSourceOptions | undefined]> = [
  ['mysql', url('COMPAT_MARIADB_URL', (value) => ({ type: 'mysql', url: value }))],
  ['postgres', url('COMPAT_POSTGRES_URL', (value) => ({ type: 'postgres', url: value }))],
  [
    'better-sqlite3',
    url('COMPAT_SQLITE_URL', (value) => ({ type: 'better-sqlite3', database: value.slice('sqlite:'.length) })),
  ],
];

function url(variable: string, options: (value: string) => DataSourceOptions): DataSourceOptions | undefined {
  const value = process.env[variable];
  return value === undefined || value === '' ? undefined : options(value);
}

/** How an error leaves a query runner: TypeORM's wrapper (with the driver's code) or the driver's own class. */
function describeError(error: unknown): string {
  if (error instanceof QueryFailedError) {
    const driver = error.driverError as { code?: unknown; errno?: unknown };
    return `QueryFailedError(${String(driver.errno ?? driver.code)})`;
  }
  return `${(error as Error).constructor.name} (not wrapped)`;
}

async function probe(engine: string, options: DataSourceOptions): Promise<string> {
  const dataSource = new DataSource(options);
  await dataSource.initialize();
  try {
    const driver = dataSource.driver as unknown as Record<string, unknown>;
    const handles = ['pool', 'master', 'databaseConnection']
      .filter((name) => driver[name] !== undefined)
      .map((name) => {
        const handle = driver[name] as Record<string, unknown>;
        const methods = ['query', 'prepare'].filter((method) => typeof handle[method] === 'function');
        return `driver.${name}(${methods.join(',')})`;
      });
    const runner = dataSource.createQueryRunner();
    const facts: string[] = [...handles];
    if (engine === 'better-sqlite3') facts.push(`driver.queryRunner shared: ${String(driver.queryRunner === runner)}`);
    if (engine === 'mysql')
      facts.push(`driver.loadedConnectorPackage: ${String(driver.loadedConnectorPackage ?? 'none')}`);
    facts.push(
      `runner.dataSource: ${'dataSource' in runner ? 'yes' : 'no'}, runner.connection: ${runner.connection === dataSource ? 'yes' : 'no'}`,
    );
    try {
      const p = (n: number): string => (engine === 'postgres' ? `$${n}` : '?');
      await runner.query('CREATE TABLE probe_t (a INT PRIMARY KEY)');
      const result = (await runner.query(`INSERT INTO probe_t (a) VALUES (${p(1)})`, [1], true)) as {
        affected?: number;
      };
      facts.push(`query(…, true).affected: ${String(result.affected)}`);
      facts.push(
        `duplicate key: ${await runner.query(`INSERT INTO probe_t (a) VALUES (${p(1)})`, [1]).then(() => 'no error', describeError)}`,
      );
      facts.push(
        `missing table: ${await runner.query('SELECT a FROM probe_no_such_table').then(() => 'no error', describeError)}`,
      );
      await runner.query('DROP TABLE probe_t');
    } finally {
      await runner.release();
    }
    return facts.join('; ');
  } finally {
    await dataSource.destroy();
  }
}

async function main(): Promise<void> {
  for (const [engine, options] of ENGINES) {
    if (options === undefined) continue;
    console.log(
      `${engine}: ${await probe(engine, options).catch((error: unknown) => `probe failed: ${String(error)}`)}`,
    );
  }
}

void main();
