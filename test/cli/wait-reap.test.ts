import * as os from 'node:os';
import type { DataSource } from 'typeorm';
import { killCli, runCli, startCli, type RunningCli } from '../support/cli';
import { ENGINES, clearLocksAndSessions, freshEngineDataSource, lockRows, type TestEngine } from '../support/engines';

/**
 * `slotlock acquire --wait` (the service's waitMs: polling, or PostgreSQL's wake-up on a
 * release), stopped by SIGINT or SIGTERM, and `slotlock reap`: on every engine, with real
 * `slotlock` processes.
 */
const LABEL = 'cli_wait_reap';
/** slotlock without a controlling terminal, leading a process group: what a test's kill reaches is slotlock alone. */
const NO_TERMINAL = { detached: true } as const;

/** `{ owner: [keys] }` of the lock table, keys sorted. */
async function holdings(dataSource: DataSource): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const row of await lockRows(dataSource)) (result[row.ownerPHID] ??= []).push(row.lockKey);
  for (const keys of Object.values(result)) keys.sort();
  return result;
}

async function sessionCount(dataSource: DataSource): Promise<number> {
  const [row] = (await dataSource.query(
    `SELECT COUNT(*) AS n FROM ${dataSource.driver.escape('drydock_slotlock_session')}`,
  )) as Array<{ n: number | string }>;
  return Number(row!.n);
}

/** Resolves once `running` has exited (its `result` would also wait for pipes an orphan may hold). */
function exited(running: RunningCli): Promise<void> {
  return new Promise((resolve) => {
    if (running.child.exitCode !== null || running.child.signalCode !== null) resolve();
    else running.child.once('exit', () => resolve());
  });
}

afterEach(() => killCli());

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))(
  'slotlock acquire --wait and slotlock reap, %s',
  (_name, engine: TestEngine) => {
    let dataSource: DataSource;
    let url: string;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, LABEL);
      url = engine.url(LABEL);
    });
    afterAll(() => dataSource?.destroy());
    beforeEach(() => clearLocksAndSessions(dataSource));

    /** Takes `keys` for `owner` with `slotlock acquire`, durably. */
    async function acquire(owner: string, ...keys: string[]): Promise<void> {
      const result = await runCli(['acquire', '--owner', owner, ...keys, '--url', url]);
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    }

    it('acquire --wait takes the lock once the holder releases it, not before', async () => {
      await acquire('PHID-A', 'deploy(prod)');
      const waiting = startCli(['acquire', '--owner', 'PHID-B', 'deploy(prod)', '--wait', '30', '--url', url]);
      await waiting.waitForOutput(/waiting up to 30 s/);
      expect(waiting.stderr()).toContain('slotlock: held: "deploy(prod)" (owned by "PHID-A"); waiting up to 30 s');
      // Still waiting a moment later: it waits rather than giving up.
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(waiting.child.exitCode).toBeNull();
      expect(await holdings(dataSource)).toEqual({ 'PHID-A': ['deploy(prod)'] });

      expect((await runCli(['release', '--owner', 'PHID-A', '--url', url])).code).toBe(0);
      const releasedAt = Date.now();
      const result = await waiting.result;
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('acquired 1 lock for "PHID-B"');
      // Polls at most 100 ms apart (woken at once on PostgreSQL), then closes its connection and exits.
      expect(Date.now() - releasedAt).toBeLessThan(2000);
      expect(await holdings(dataSource)).toEqual({ 'PHID-B': ['deploy(prod)'] });
    });

    it('acquire --wait 1 gives up with 75 once the time is up, taking nothing; --json says how long it waited', async () => {
      await acquire('PHID-A', 'deploy(prod)');
      const result = await runCli([
        'acquire',
        '--owner',
        'PHID-B',
        'deploy(prod)',
        'other',
        '--wait',
        '1',
        '--url',
        url,
      ]);
      expect(result.code).toBe(75);
      expect(result.stderr).toMatch(/1 lock is held, nothing taken after waiting 1(\.\d)? s:/);
      expect(result.stderr).toMatch(/^deploy\(prod\)\s+PHID-A$/m);
      expect(result.elapsedMs).toBeGreaterThanOrEqual(1000);

      const json = await runCli([
        'acquire',
        '--json',
        '--owner',
        'PHID-B',
        'deploy(prod)',
        '--wait',
        '0.5',
        '--url',
        url,
      ]);
      expect(json.code).toBe(75);
      const report = JSON.parse(json.stdout) as { acquired: boolean; failure: string; waitedMs: number };
      expect(report).toMatchObject({
        acquired: false,
        failure: 'held',
        held: [{ key: 'deploy(prod)', owner: 'PHID-A' }],
      });
      expect(report.waitedMs).toBeGreaterThanOrEqual(500);
      expect(await holdings(dataSource)).toEqual({ 'PHID-A': ['deploy(prod)'] });
    });

    it.each(['SIGINT', 'SIGTERM'] as const)(
      '%s while acquire --wait waits: exits 128+N at once, taking nothing',
      async (signal) => {
        await acquire('PHID-A', 'deploy(prod)');
        const waiting = startCli(
          ['acquire', '--owner', 'PHID-B', 'free(1)', 'deploy(prod)', '--wait', '30', '--url', url],
          NO_TERMINAL,
        );
        await waiting.waitForOutput(/waiting up to 30 s/);
        const signalledAt = Date.now();
        waiting.child.kill(signal);
        const result = await waiting.result;
        expect(result.code).toBe(128 + os.constants.signals[signal]);
        expect(Date.now() - signalledAt).toBeLessThan(2000);
        expect(result.stderr).toContain(`slotlock: interrupted by ${signal}; nothing taken`);
        expect(result.stdout).toBe('');
        expect(await holdings(dataSource)).toEqual({ 'PHID-A': ['deploy(prod)'] });
      },
    );

    it('reap frees an expired session and its locks (one line), leaves live sessions and durable locks alone', async () => {
      await acquire('DURABLE', 'kept(1)');
      // A `slotlock run` killed with SIGKILL: its session row and locks stay until the session expires.
      const dead = startCli(
        [
          'run',
          '--owner',
          'DEAD-RUN',
          '--lock',
          'job(1)',
          '--lock',
          'job(2)',
          '--url',
          url,
          '--',
          process.execPath,
          '-e',
          "console.log('command started ' + process.pid); setTimeout(() => {}, 60000)",
        ],
        NO_TERMINAL,
      );
      await dead.waitForOutput(/command started \d+/);
      dead.child.kill('SIGKILL');
      await exited(dead);
      // The command outlived slotlock, in a process group of its own: stop it.
      process.kill(-Number(/command started (\d+)/.exec(dead.stdout())![1]), 'SIGKILL');
      expect(await sessionCount(dataSource)).toBe(1);

      // Live by the table's reckoning (a 30 s TTL): reap leaves it alone.
      const early = await runCli(['reap', '--url', url]);
      expect({ code: early.code, stdout: early.stdout, stderr: early.stderr }).toEqual({
        code: 0,
        stdout: 'reaped 0 expired sessions, freeing 0 locks\n',
        stderr: '',
      });
      expect(await holdings(dataSource)).toEqual({ DURABLE: ['kept(1)'], 'DEAD-RUN': ['job(1)', 'job(2)'] });

      await dataSource.query(
        `UPDATE ${dataSource.driver.escape('drydock_slotlock_session')} SET ${dataSource.driver.escape('expiresAt')} = 0`,
      );
      const reaped = await runCli(['reap', '--url', url]);
      expect({ code: reaped.code, stdout: reaped.stdout, stderr: reaped.stderr }).toEqual({
        code: 0,
        stdout: 'reaped 1 expired session, freeing 2 locks\n',
        stderr: '',
      });
      expect(await holdings(dataSource)).toEqual({ DURABLE: ['kept(1)'] });
      expect(await sessionCount(dataSource)).toBe(0);

      const json = await runCli(['reap', '--json', '--url', url]);
      expect(json.code).toBe(0);
      expect(JSON.parse(json.stdout)).toEqual({ sessions: 0, locks: 0 });
    });
  },
);
