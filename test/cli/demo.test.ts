import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import { DrydockSlotLock, dataSourceOptionsFromUrl } from '../../src';
import { ENGINES } from '../support/engines';
import { testDatabaseName } from '../support/database';
import { killCli, runCli, type CliResult } from '../support/cli';

const DATABASE = testDatabaseName('cli_demo');

afterEach(() => killCli());

/** The checks every demo run must pass: a race without locks, none with them, progress shown. */
function expectDemoOutcome(result: CliResult): void {
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
}

/** The demo database agrees: round 2's resources, one per binding at most, each holding its binding's lock. */
async function expectOneResourcePerBinding(url: string): Promise<void> {
  const dataSource = new DataSource(dataSourceOptionsFromUrl(url));
  await dataSource.initialize();
  try {
    const perBinding = await dataSource
      .createQueryBuilder()
      .select('r.binding_id', 'binding')
      .addSelect('COUNT(*)', 'n')
      .from('resource', 'r')
      .where('r.round = 2')
      .groupBy('r.binding_id')
      .getRawMany<{ binding: number; n: string | number }>();
    expect(perBinding.length).toBeGreaterThan(0);
    for (const row of perBinding) expect(Number(row.n)).toBe(1);
    expect(await dataSource.getRepository(DrydockSlotLock).count()).toBe(perBinding.length);
  } finally {
    await dataSource.destroy();
  }
}

describe.each(ENGINES)('slotlock demo on $name', (engine) => {
  it('double-allocates without slot locks, never with them, and exits 0', async () => {
    const result = await runCli(['demo', '--url', engine.url('cli_demo_base'), '--database', DATABASE]);
    expectDemoOutcome(result);
    await expectOneResourcePerBinding(engine.url('cli_demo'));
  });
});

describe('slotlock demo with no database URL at all', () => {
  let dataHome: string;
  beforeAll(() => {
    dataHome = mkdtempSync(path.join(tmpdir(), 'slotlock-xdg-'));
  });
  afterAll(() => {
    rmSync(dataHome, { recursive: true, force: true });
  });

  it('runs on the embedded SQLite file, next to the default lock database', async () => {
    const result = await runCli(['demo'], { env: { XDG_DATA_HOME: dataHome } });
    expectDemoOutcome(result);
    const file = path.join(dataHome, 'drydock-slotlock', 'slotlock_demo.sqlite');
    expect(result.stdout).toContain(file);
    await expectOneResourcePerBinding(`sqlite:${file}`);
  });
});
