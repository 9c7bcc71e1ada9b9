import { DataSource, type DataSourceOptions } from 'typeorm';
import { dataSourceOptionsFromUrl } from '../../src';
import { MYSQL_SERVER_URL, testDatabaseName, withAdmin } from '../support/database';
import { POSTGRES_SERVER_URL } from '../support/engines';
import { killCli, runCli } from '../support/cli';
import { startTcpRelay } from '../support/tcp-relay';

/**
 * A server URL means one thing to every part of slotlock: `--create-database`, the
 * migration and the commands connect to the same host and database, read once from the
 * URL (dataSourceOptionsFromUrl), never parsed again by TypeORM or the driver.
 */
const SERVERS = [
  { engine: 'mariadb', server: MYSQL_SERVER_URL, port: 3306 },
  { engine: 'postgres', server: POSTGRES_SERVER_URL, port: 5432 },
] as const;

/** A database name with a '-' (written %2D in URLs), which an unencoding parser reads as another name. */
const DASHED = `${testDatabaseName('cli_url')}-pct`;
const PLAIN = testDatabaseName('cli_url');

async function dropDatabase(engine: 'mariadb' | 'postgres', name: string): Promise<void> {
  if (engine === 'mariadb') {
    await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${name}\``));
    return;
  }
  const admin = new DataSource({ type: 'postgres', url: `${POSTGRES_SERVER_URL}/postgres` });
  await admin.initialize();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.destroy();
  }
}

/** Whether the lock table exists in database `name` (asked through a URL-free DataSource). */
async function hasLockTable(engine: 'mariadb' | 'postgres', name: string): Promise<boolean> {
  const server = engine === 'mariadb' ? MYSQL_SERVER_URL : POSTGRES_SERVER_URL;
  const dataSource = new DataSource({ type: engine === 'mariadb' ? 'mysql' : 'postgres', url: `${server}/${name}` });
  await dataSource.initialize();
  try {
    return await dataSource.createQueryRunner().hasTable('drydock_slotlock');
  } finally {
    await dataSource.destroy();
  }
}

afterEach(() => killCli());

describe('dataSourceOptionsFromUrl: one reading of the URL, handed to TypeORM in parts', () => {
  it('decodes the user, password and database, strips the brackets of an IPv6 host, passes no url', () => {
    const options = dataSourceOptionsFromUrl(
      'mysql://r%40ot:p%40ss%2Fword@[::1]:3307/review%2Dx',
    ) as DataSourceOptions & {
      host?: string;
    };
    expect(options).toMatchObject({
      type: 'mysql',
      host: '::1',
      port: 3307,
      username: 'r@ot',
      password: 'p@ss/word',
      database: 'review-x',
    });
    expect(options).not.toHaveProperty('url');
    expect(dataSourceOptionsFromUrl('postgresql://u@[::1]/db')).toMatchObject({
      type: 'postgres',
      host: '::1',
      database: 'db',
    });
    expect(dataSourceOptionsFromUrl('postgres://u@h/db')).not.toHaveProperty('port');
  });

  it('sslmode: TLS for the driver (verified unless no-verify), none for disable', () => {
    expect(dataSourceOptionsFromUrl('mysql://u@h/db?sslmode=verify-full')).toMatchObject({
      ssl: { rejectUnauthorized: true, verifyIdentity: true },
    });
    expect(dataSourceOptionsFromUrl('postgres://u@h/db?sslmode=require')).toMatchObject({
      ssl: { rejectUnauthorized: true },
    });
    expect(dataSourceOptionsFromUrl('postgres://u@h/db?sslmode=no-verify')).toMatchObject({
      ssl: { rejectUnauthorized: false },
    });
    expect(dataSourceOptionsFromUrl('mysql://u@h/db?sslmode=disable')).not.toHaveProperty('ssl');
  });

  it.each([
    ['a #fragment', 'mysql://root:LEAK@h/db#x', /has a #fragment, which no database URL has: remove it/],
    ['an empty #fragment', 'postgres://root:LEAK@h/db#', /has a #fragment/],
    [
      'a query parameter no one reads',
      'mysql://root:LEAK@h/db?charset=latin1',
      /query parameters slotlock does not read \(charset\)/,
    ],
    [
      'a password in the query',
      'postgres://root@h/db?password=LEAK',
      /query parameters slotlock does not read \(password\)/,
    ],
    [
      'an sslmode of libpq with no equivalent',
      'postgres://u:LEAK@h/db?sslmode=prefer',
      /sslmode=prefer: give one of disable, require, verify-full, no-verify/,
    ],
    ['a path of several parts', 'mysql://u:LEAK@h/db/x', /a path of several parts/],
    ['no host', 'mysql:///db', /names no host/],
  ])('refuses %s with a TypeError that says what to do, password hidden', (_what, url, message) => {
    let error: unknown;
    try {
      dataSourceOptionsFromUrl(url);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('LEAK');
  });
});

describe.each(SERVERS)('slotlock on $engine: the URL means one database and one host', ({ engine, server, port }) => {
  it('a percent-encoded database name: --create-database creates it, and the migration and commands use that very one', async () => {
    expect(DASHED).toContain('-');
    await dropDatabase(engine, DASHED);
    const encoded = `${server}/${DASHED.replace(/-/g, '%2D')}`;
    const migrated = await runCli(['migrate', '--create-database', '--url', encoded]);
    expect({ code: migrated.code, stderr: migrated.stderr }).toEqual({ code: 0, stderr: '' });
    expect(migrated.stdout).toContain(`created database "${DASHED}"`);
    expect(await hasLockTable(engine, DASHED)).toBe(true);
    const again = await runCli(['migrate', '--create-database', '--url', encoded]);
    expect({ code: again.code, stdout: again.stdout, stderr: again.stderr }).toEqual({
      code: 0,
      stdout: `${encoded} is up to date: no migration to run\n`,
      stderr: '',
    });
    expect((await runCli(['acquire', '--owner', 'PHID-pct', 'k', '--url', encoded])).code).toBe(0);
    expect((await runCli(['held', 'k', '--url', encoded])).stdout).toContain('PHID-pct');
    await dropDatabase(engine, DASHED);
  });

  it('a #fragment is refused before anything is created', async () => {
    await dropDatabase(engine, PLAIN);
    const result = await runCli(['migrate', '--create-database', '--url', `${server}/${PLAIN}#x`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^slotlock: the database URL ".*#x" has a #fragment, which no database URL has: remove it/,
    );
    expect(result.stdout).toBe('');
    const missing = await runCli(['held', 'k', '--url', `${server}/${PLAIN}`]);
    expect(missing.stderr).toMatch(/does not exist/);
  });

  it('sslmode reaches the driver: verify-full against a server without TLS says so; disable connects', async () => {
    const url = `${server}/${PLAIN}`;
    await dropDatabase(engine, PLAIN);
    expect((await runCli(['migrate', '--create-database', '--url', `${url}?sslmode=disable`])).code).toBe(0);
    const tls = await runCli(['held', 'k', '--url', `${url}?sslmode=verify-full`]);
    expect({ code: tls.code, stderr: tls.stderr }).toEqual({
      code: 1,
      stderr:
        `slotlock: cannot connect to ${url}?sslmode=verify-full: the server does not support TLS, which sslmode ` +
        'asks for; enable TLS on the server, or use sslmode=disable\n',
    });
    await dropDatabase(engine, PLAIN);
  });

  it('an IPv6 host in brackets ([::1]) connects, for --create-database, migrate and the commands', async () => {
    // Neither test server listens on ::1 (ss -ltn): a relay on [::1] stands in front of it.
    const relay = await startTcpRelay(port, { listenHost: '::1' });
    try {
      await dropDatabase(engine, PLAIN);
      const url = `${server.replace('127.0.0.1', `[::1]`).replace(/:\d+$/, `:${relay.port}`)}/${PLAIN}`;
      expect(url).toContain(`@[::1]:${relay.port}/`);
      const migrated = await runCli(['migrate', '--create-database', '--url', url]);
      expect({ code: migrated.code, stderr: migrated.stderr }).toEqual({ code: 0, stderr: '' });
      expect(migrated.stdout).toMatch(/^created database .*\nran CreateDrydockSlotLock/);
      expect((await runCli(['acquire', '--owner', 'PHID-v6', 'k', '--url', url])).code).toBe(0);
      expect((await runCli(['locks', '--owner', 'PHID-v6', '--url', url])).stdout).toContain('k');
      expect(relay.connections()).toBeGreaterThanOrEqual(4);
    } finally {
      relay.close();
      await dropDatabase(engine, PLAIN);
    }
  });
});
