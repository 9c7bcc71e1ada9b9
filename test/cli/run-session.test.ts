import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { DataSource } from 'typeorm';
import { killCli, runCli, startCli, type RunningCli } from '../support/cli';
import { ENGINES, clearLocksAndSessions, freshEngineDataSource, lockRows, type TestEngine } from '../support/engines';
import { SlotLockService } from '../../src';
import { startTcpRelay } from '../support/tcp-relay';

/**
 * `slotlock run` holds its locks under a session (--ttl, default 30 s): a row in
 * drydock_slotlock_session while the command runs, freed within the TTL and a third of
 * it when slotlock is killed with SIGKILL; --ttl 0 holds durable locks as before. On every
 * engine, with real `slotlock` processes and real commands.
 */
const LABEL = 'cli_run_session';
/**
 * slotlock in a session of its own, with no controlling terminal whoever runs the tests:
 * the command then gets a process group of its own, so a SIGKILL of slotlock leaves it
 * running, as in a service, and the test stops it by its group.
 */
const NO_TERMINAL = { detached: true } as const;
/** How long a waiter may take beyond the moment the locks are free: a poll (100 ms), a process start or two, a loaded machine. */
const SLACK_MS = 1000;

/** `node -e <script>`, as the command slotlock runs. */
function node(script: string): string[] {
  return [process.execPath, '-e', script];
}

/** A command that says it started (with its pid), runs until a signal, and says which one it got. */
const LONG_COMMAND = node(
  "for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => { console.log('command got ' + s); process.exit(0); });" +
    "console.log('command started ' + process.pid); setInterval(() => {}, 1000);",
);

/** The sessions in the table: owner and TTL (MySQL returns the VARBINARY owner as bytes). */
async function sessionRows(dataSource: DataSource): Promise<Array<{ owner: string; ttlMs: number }>> {
  const q = (name: string): string => dataSource.driver.escape(name);
  const rows = (await dataSource.query(
    `SELECT ${q('ownerPHID')} AS owner, ${q('ttlMs')} AS ttl FROM ${q('drydock_slotlock_session')} ORDER BY ${q('ownerPHID')}`,
  )) as Array<{ owner: string | Buffer; ttl: number | string }>;
  return rows.map((row) => ({
    owner: Buffer.isBuffer(row.owner) ? row.owner.toString('utf8') : row.owner,
    ttlMs: Number(row.ttl),
  }));
}

/** `owner key` of every lock. */
async function holders(dataSource: DataSource): Promise<string[]> {
  return (await lockRows(dataSource)).map((row) => `${row.ownerPHID} ${row.lockKey}`);
}

/** The pid of the command in its "command started" line. */
function commandPid(running: RunningCli): number {
  const match = /command started (\d+)/.exec(running.stdout());
  if (match === null) throw new Error(`no "command started" line in ${JSON.stringify(running.stdout())}`);
  return Number(match[1]);
}

/**
 * SIGKILLs `slotlock` alone and resolves once it has exited. (Not its `result`: that waits
 * for its stdout and stderr to close, which the orphaned command holds open.)
 */
function killNine(running: RunningCli): Promise<void> {
  return new Promise((resolve) => {
    running.child.once('exit', () => resolve());
    running.child.kill('SIGKILL');
  });
}

/** Commands orphaned by a SIGKILL of their slotlock: each leads a process group of its own. */
const orphans = new Set<number>();

function killOrphans(): void {
  for (const pid of orphans) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  orphans.clear();
}

afterEach(() => {
  killCli();
  killOrphans();
});

describe.each(ENGINES.map((engine) => [engine.name, engine] as const))(
  'slotlock run under a session, %s',
  (_name, engine: TestEngine) => {
    let dataSource: DataSource;
    let url: string;

    beforeAll(async () => {
      dataSource = await freshEngineDataSource(engine, LABEL);
      url = engine.url(LABEL);
    });
    afterAll(() => dataSource?.destroy());
    beforeEach(() => clearLocksAndSessions(dataSource));

    test('without --owner, a live session of this host and pid (a container restarted after a crash) does not stop the run', async () => {
      // In a pid namespace of its own slotlock is pid 1, as in a restarted container; the crashed run's session is live.
      const stale = new SlotLockService(dataSource);
      const crashed = await stale.openSession({ ttlMs: 30_000, ownerPHID: `slotlock-run(${os.hostname()}:1)` });
      try {
        const result = await runCli(['run', '--url', url, '--lock', 'ct(1)', '--', ...node("console.log('ran')")], {
          under: ['unshare', '--fork', '--pid'],
        });
        expect(result.stderr).toMatch(/holding as "slotlock-run\(.*:1:[0-9a-f]{8}\)"/);
        expect([result.code, result.stdout.trim()]).toEqual([0, 'ran']);
        expect(await lockRows(dataSource)).toEqual([]);
      } finally {
        await crashed.close();
        await stale.close();
      }
    });

    /** `slotlock run` of LONG_COMMAND, started and holding its locks; the command is killed at the end of the test. */
    async function startHolder(
      owner: string,
      keys: readonly string[],
      extra: readonly string[] = [],
    ): Promise<RunningCli> {
      const locks = keys.flatMap((key) => ['--lock', key]);
      const running = startCli(
        ['run', '--owner', owner, ...locks, ...extra, '--url', url, '--', ...LONG_COMMAND],
        NO_TERMINAL,
      );
      await running.waitForOutput(/command started \d+/);
      orphans.add(commandPid(running));
      return running;
    }

    it('holds the locks under a session while the command runs (its row, TTL 30 s by default); neither is left after', async () => {
      const running = await startHolder('RS-1', ['job(1)', 'job(2)']);
      expect(await sessionRows(dataSource)).toEqual([{ owner: 'RS-1', ttlMs: 30_000 }]);
      expect((await holders(dataSource)).sort()).toEqual(['RS-1 job(1)', 'RS-1 job(2)']);

      running.child.kill('SIGTERM');
      const result = await running.result;
      expect(result.stdout).toContain('command got SIGTERM');
      expect(result.code).toBe(0);
      expect(await sessionRows(dataSource)).toEqual([]);
      expect(await holders(dataSource)).toEqual([]);
    });

    it('--ttl 1: a session of 1 s; the command runs 4 s (four TTLs) and keeps its lock all along', async () => {
      const result = await runCli([
        'run',
        '--owner',
        'RS-2',
        '--lock',
        'job(1)',
        '--ttl',
        '1',
        '--url',
        url,
        '--',
        ...node("console.log('running'); setTimeout(() => console.log('done'), 4000)"),
      ]);
      expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
        code: 0,
        stdout: 'running\ndone\n',
        stderr: '',
      });
      expect(await sessionRows(dataSource)).toEqual([]);
      expect(await holders(dataSource)).toEqual([]);
    });

    it('kill -9 of `slotlock run --ttl 1`: the lock outlives it, and a second run --wait 5 takes it within TTL + TTL/3 + slack', async () => {
      const ttlMs = 1000;
      const first = await startHolder('RS-dead', ['deploy(prod)'], ['--ttl', '1']);
      // The second run waits already, so what is measured is the reclaim, not its start-up.
      const second = startCli([
        'run',
        '--owner',
        'RS-next',
        '--lock',
        'deploy(prod)',
        '--ttl',
        '1',
        '--wait',
        '5',
        '--url',
        url,
        '--',
        // When its process started (performance.timeOrigin): right after the second run took the lock.
        ...node("console.log('second took it at ' + Math.round(performance.timeOrigin))"),
      ]);
      await second.waitForOutput(/held; waiting up to 5 s/);
      // A few heartbeats go by while it waits: the session lives on.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(second.child.exitCode).toBeNull();

      const killedAt = Date.now();
      await killNine(first);
      // The command outlives it (its own group), and the lock stays until the session expires.
      expect(await holders(dataSource)).toEqual(['RS-dead deploy(prod)']);

      const result = await second.result;
      expect(result.code).toBe(0);
      const reclaimMs = Number(/second took it at (\d+)/.exec(result.stdout)?.[1]) - killedAt;
      // Free no later than TTL + margin (min(1 s, TTL/3)) after the last heartbeat, which came before the kill...
      expect(reclaimMs).toBeLessThan(ttlMs + ttlMs / 3 + SLACK_MS);
      // ...and no sooner than TTL after the kill, less one heartbeat interval: the TTL was kept.
      expect(reclaimMs).toBeGreaterThanOrEqual(ttlMs - ttlMs / 3);
      // The dead session was reaped by that acquisition, and the second run cleaned up after itself.
      expect(await sessionRows(dataSource)).toEqual([]);
      expect(await holders(dataSource)).toEqual([]);
    });

    it('--ttl 0: durable locks, no session; after kill -9 the lock stays, and a run --wait 2 gives up with 75', async () => {
      const first = await startHolder('RS-durable', ['deploy(prod)'], ['--ttl', '0']);
      expect(await sessionRows(dataSource)).toEqual([]);
      await killNine(first);

      const second = await runCli([
        'run',
        '--owner',
        'RS-next',
        '--lock',
        'deploy(prod)',
        '--ttl',
        '1',
        '--wait',
        '2',
        '--url',
        url,
        '--',
        ...node("console.log('ran')"),
      ]);
      expect(second.code).toBe(75);
      expect(second.stdout).toBe('');
      expect(second.stderr).toMatch(/^deploy\(prod\)\s+RS-durable$/m);
      expect(second.stderr).toMatch(/nothing taken after waiting \d/);
      expect(await holders(dataSource)).toEqual(['RS-durable deploy(prod)']);
      // The waiter's own session is gone too.
      expect(await sessionRows(dataSource)).toEqual([]);
    });

    it('a session lost while the command runs (its row deleted): one line on stderr, the command gets SIGTERM, exit 76, the locks released', async () => {
      const running = await startHolder('RS-lost', ['job(1)'], ['--ttl', '1']);
      await dataSource.query(`DELETE FROM ${dataSource.driver.escape('drydock_slotlock_session')}`);
      const result = await running.result;
      expect(result.code).toBe(76);
      expect(result.stdout).toContain('command got SIGTERM');
      const lines = result.stderr.split('\n').filter((line) => line !== '');
      expect(lines).toEqual([
        expect.stringMatching(
          /^slotlock: lost the session holding the locks: session "RS-lost" is lost: .*; sending the command SIGTERM$/,
        ),
      ]);
      expect(await holders(dataSource)).toEqual([]);
      expect(await sessionRows(dataSource)).toEqual([]);
    });

    it('SIGTERM while run --wait waits: exits 143 at once, the command not run, nothing held, no session left', async () => {
      const marker = path.join(os.tmpdir(), `slotlock-run-session-${process.pid}-${Date.now()}`);
      expect((await runCli(['acquire', '--owner', 'HOLDER', 'deploy(prod)', '--url', url])).code).toBe(0);
      const waiting = startCli(
        [
          'run',
          '--owner',
          'RS-waiter',
          '--lock',
          'deploy(prod)',
          '--lock',
          'other(1)',
          '--wait',
          '30',
          '--url',
          url,
          '--',
          ...node(`require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`),
        ],
        NO_TERMINAL,
      );
      await waiting.waitForOutput(/waiting up to 30 s/);
      expect(await sessionRows(dataSource)).toEqual([{ owner: 'RS-waiter', ttlMs: 30_000 }]);

      const signalledAt = Date.now();
      waiting.child.kill('SIGTERM');
      const result = await waiting.result;
      expect(result.code).toBe(128 + os.constants.signals.SIGTERM);
      expect(Date.now() - signalledAt).toBeLessThan(SLACK_MS * 2);
      expect(result.stderr).toContain('slotlock: interrupted by SIGTERM; nothing taken, the command was not run');
      expect(fs.existsSync(marker)).toBe(false);
      expect(await holders(dataSource)).toEqual(['HOLDER deploy(prod)']);
      expect(await sessionRows(dataSource)).toEqual([]);
    });

    it('a second run with the --owner of a live run exits 75 at once, and leaves the first alone', async () => {
      const first = await startHolder('RS-same', ['job(1)']);
      const second = await runCli(['run', '--owner', 'RS-same', '--lock', 'job(2)', '--url', url, '--', 'true']);
      expect(second.code).toBe(75);
      expect(second.stderr).toContain('another process holds a live session of "RS-same"');
      expect(await holders(dataSource)).toEqual(['RS-same job(1)']);
      expect(await sessionRows(dataSource)).toEqual([{ owner: 'RS-same', ttlMs: 30_000 }]);
      first.child.kill('SIGTERM');
      expect((await first.result).code).toBe(0);
    });
  },
);

describe.each(ENGINES.filter((engine) => engine.name !== 'sqlite').map((engine) => [engine.name, engine] as const))(
  'slotlock run, %s, its database cut off while the command runs',
  (_name, engine: TestEngine) => {
    it('the session is lost within the TTL: the command gets SIGTERM, exit 76, and the failed release says the locks expire', async () => {
      const label = 'cli_run_session_cut';
      const dataSource = await freshEngineDataSource(engine, label);
      try {
        const direct = engine.url(label);
        // Every connection of slotlock's goes through the relay; closing it cuts them all and refuses new ones.
        const relay = await startTcpRelay(Number(new URL(direct).port));
        const url = direct.replace(/:\d+\//, `:${relay.port}/`);
        const running = startCli(
          ['run', '--owner', 'RS-cut', '--lock', 'job(1)', '--ttl', '1', '--url', url, '--', ...LONG_COMMAND],
          NO_TERMINAL,
        );
        try {
          await running.waitForOutput(/command started \d+/);
        } finally {
          orphans.add(commandPid(running));
        }
        const cutAt = Date.now();
        relay.close();
        const result = await running.result;
        // Lost once a TTL has passed since the last renewal, which came before the cut.
        expect(Date.now() - cutAt).toBeLessThan(1000 + SLACK_MS);
        expect(result.code).toBe(76);
        expect(result.stdout).toContain('command got SIGTERM');
        expect(result.stderr.split('\n').filter((line) => line !== '')).toEqual([
          expect.stringMatching(
            /^slotlock: lost the session holding the locks: session "RS-cut" is lost: no heartbeat reached the database within its TTL \(1000 ms\).*; sending the command SIGTERM$/,
          ),
          expect.stringMatching(
            /^slotlock: could not release the locks of "RS-cut": .*; they are free once the session expires \(within 1\.3 s\), or at once with `slotlock release --owner 'RS-cut' --url '.*'`$/,
          ),
        ]);
        // As it says: the next acquisition after the expiry frees them.
        await new Promise((resolve) => setTimeout(resolve, 1400));
        const next = await runCli(['acquire', '--owner', 'NEXT', 'job(1)', '--url', direct]);
        expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: '' });
        expect(await holders(dataSource)).toEqual(['NEXT job(1)']);
        expect(await sessionRows(dataSource)).toEqual([]);
      } finally {
        await dataSource.destroy();
      }
    });
  },
);
