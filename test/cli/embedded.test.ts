import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { killCli, runCli } from '../support/cli';

afterEach(() => killCli());

describe('slotlock with no database URL: the embedded SQLite file', () => {
  let dataHome: string;
  const env = (): NodeJS.ProcessEnv => ({ XDG_DATA_HOME: dataHome });

  beforeAll(() => {
    dataHome = mkdtempSync(path.join(tmpdir(), 'slotlock-xdg-'));
  });
  afterAll(() => {
    rmSync(dataHome, { recursive: true, force: true });
  });

  it('migrates, takes, refuses and releases locks in $XDG_DATA_HOME/drydock-slotlock/slotlock.sqlite', async () => {
    const file = path.join(dataHome, 'drydock-slotlock', 'slotlock.sqlite');
    const migrated = await runCli(['migrate'], { env: env() });
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toContain('ran CreateDrydockSlotLock1442836800000');
    expect(existsSync(file)).toBe(true);

    expect((await runCli(['acquire', '--owner', 'PHID-A', 'deploy(prod)'], { env: env() })).code).toBe(0);
    const refused = await runCli(['acquire', '--owner', 'PHID-B', 'deploy(prod)'], { env: env() });
    expect(refused.code).toBe(75);
    expect(refused.stderr).toContain('deploy(prod)');
    expect(refused.stderr).toContain('PHID-A');

    const released = await runCli(['release', '--owner', 'PHID-A'], { env: env() });
    expect(released.code).toBe(0);
    expect(released.stdout).toMatch(/released 1 lock/);
  });
});
