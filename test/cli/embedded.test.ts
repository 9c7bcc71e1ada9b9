import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
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

describe('an empty or relative $XDG_DATA_HOME counts as unset (XDG Base Directory spec)', () => {
  let home: string;
  beforeAll(() => {
    home = mkdtempSync(path.join(tmpdir(), 'slotlock-home-'));
  });
  afterAll(() => {
    rmSync(home, { recursive: true, force: true });
  });

  it.each([
    ['empty', ''],
    ['relative', 'data'],
  ])('%s: every working directory uses ~/.local/share/drydock-slotlock/slotlock.sqlite', async (_what, xdgDataHome) => {
    const file = path.join(home, '.local', 'share', 'drydock-slotlock', 'slotlock.sqlite');
    rmSync(path.join(home, '.local'), { recursive: true, force: true });
    const env = { HOME: home, XDG_DATA_HOME: xdgDataHome };
    const [first, second] = [path.join(home, 'a'), path.join(home, 'b')];
    for (const folder of [first, second]) mkdirSync(folder, { recursive: true });

    expect((await runCli(['migrate'], { env, cwd: first })).code).toBe(0);
    expect(existsSync(file)).toBe(true);
    expect((await runCli(['acquire', '--owner', 'PHID-A', 'k'], { env, cwd: first })).code).toBe(0);
    // From another working directory: the same file, so the same lock.
    const held = await runCli(['held', 'k'], { env, cwd: second });
    expect({ code: held.code, stdout: held.stdout, stderr: held.stderr }).toEqual({
      code: 0,
      stdout: expect.stringContaining('PHID-A'),
      stderr: '',
    });
    expect((await runCli(['held', '--help'], { env, cwd: second })).stdout).toContain(file);
    for (const folder of [first, second]) expect(readdirSync(folder)).toEqual([]);
  });
});

describe('slotlock on a SQLite URL whose file does not exist', () => {
  let folder: string;
  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'slotlock-missing-'));
  });
  afterAll(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  it.each([
    ['held', 'k'],
    ['locks', '--owner', 'o'],
    ['acquire', '--owner', 'o', 'k'],
    ['release', '--owner', 'o'],
    ['run', '--lock', 'k', '--', 'true'],
  ])(
    '%s says there is no lock database there, exits 1, and creates neither the file nor its folder',
    async (...args) => {
      const directory = path.join(folder, 'not-yet');
      const file = path.join(directory, 'locks.sqlite');
      for (const env of [{ SLOTLOCK_DATABASE_URL: `sqlite:${file}` }, { XDG_DATA_HOME: directory }]) {
        const result = await runCli(args, { env });
        const expected =
          'SLOTLOCK_DATABASE_URL' in env ? file : path.join(directory, 'drydock-slotlock', 'slotlock.sqlite');
        expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
          code: 1,
          stdout: '',
          stderr:
            `slotlock: no lock database at ${expected}: the file does not exist; ` +
            'create it with `slotlock migrate` (same --url), or fix the URL\n',
        });
        expect(existsSync(directory)).toBe(false);
      }
    },
  );
});
