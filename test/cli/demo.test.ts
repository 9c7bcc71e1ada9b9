import { DataSource } from 'typeorm';
import { dataSourceOptions, MYSQL_SERVER_URL, testDatabaseName, withAdmin } from '../support/database';
import { killCli, runCli } from '../support/cli';

const DATABASE = testDatabaseName('cli_demo');

afterEach(() => killCli());
afterAll(() => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS \`${DATABASE}\``)));

describe('slotlock demo', () => {
  it('double-allocates without slot locks, never with them, and exits 0', async () => {
    const result = await runCli(['demo', '--url', `${MYSQL_SERVER_URL}/ignored`, '--database', DATABASE]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });

    const round1 = result.stdout.slice(result.stdout.indexOf('Round 1'), result.stdout.indexOf('Round 2'));
    const round2 = result.stdout.slice(result.stdout.indexOf('Round 2'), result.stdout.indexOf('Summary'));
    expect(round1).toMatch(/binding \d+ allocated \d+ times: DOUBLE ALLOCATION/);
    expect(round2).not.toContain('DOUBLE ALLOCATION');
    expect(round2).toContain('every binding allocated at most once');
    expect(round2).toMatch(/SlotLockException: Unable to acquire slot locks: "binding\(\d+\)" \(owned by "PHID-DRYR-/);
    expect(result.stdout).toMatch(/bindings allocated twice or more\s+[1-9]\d*\s+0\n/);
    expect(result.stdout).toContain('OK: without slot locks');
    // Progress, as it happens: each allocator loads, then allocates or gives up.
    expect(result.stdout.match(/allocator \d+ {2}loads the free bindings/g)).toHaveLength(8);

    // The database agrees: round 2's resources, one per binding at most, each holding its binding's lock.
    const dataSource = new DataSource(dataSourceOptions(DATABASE));
    await dataSource.initialize();
    try {
      const perBinding = (await dataSource.query(
        'SELECT bindingId, COUNT(*) AS n FROM resource WHERE round = 2 GROUP BY bindingId',
      )) as Array<{ bindingId: number; n: string | number }>;
      expect(perBinding.length).toBeGreaterThan(0);
      for (const row of perBinding) expect(Number(row.n)).toBe(1);
      const locks = (await dataSource.query(
        'SELECT CAST(ownerPHID AS CHAR) AS owner, lockKey FROM drydock_slotlock',
      )) as unknown[];
      expect(locks).toHaveLength(perBinding.length);
    } finally {
      await dataSource.destroy();
    }
  });
});
