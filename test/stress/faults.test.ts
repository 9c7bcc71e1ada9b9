/**
 * Faults: nothing lost, nothing partial. Connections killed under the service, and the
 * server shut down (and crashed) under a live DataSource, on a throwaway MariaDB server
 * (scripts/scratch-mariadb.sh, port 3320) so that the main server is never disturbed.
 * Each scenario runs in a child process that records any uncaught exception or
 * unhandled rejection: there must be none.
 */
import { killWorkers, spawnWorkers } from '../support/spawn-workers';
import {
  FAULT_WORKER_FILE,
  JOURNAL_TABLE_DDL,
  PROMPT_MS,
  isClearConnectionError,
  type FaultScenario,
  type FaultWorkerResult,
  type KillCallerResult,
  type KillChunkedResult,
  type ShutdownResult,
} from '../support/stress/faults';
import { recordFigures, report } from '../support/stress/figures';
import { SCRATCH_SERVER_URL, databaseUrl, prepareDatabase, scratchMariadb } from '../support/stress/servers';

const DATABASE = 'slotlock_stress_faults';
const URL = databaseUrl(SCRATCH_SERVER_URL, DATABASE);

async function runScenario<R extends FaultWorkerResult>(scenario: FaultScenario): Promise<R> {
  const [result] = await spawnWorkers<{ url: string; scenario: FaultScenario }, FaultWorkerResult>({
    file: FAULT_WORKER_FILE,
    configs: [{ url: URL, scenario }],
    timeoutMs: 240_000,
  });
  return result as R;
}

describe('faults: nothing lost, nothing partial (throwaway MariaDB on 3320)', () => {
  beforeAll(async () => {
    await scratchMariadb.start();
    await prepareDatabase(SCRATCH_SERVER_URL, DATABASE, [JOURNAL_TABLE_DDL]);
  }, 180_000);
  afterEach(() => {
    killWorkers();
  });
  afterAll(async () => {
    killWorkers();
    await scratchMariadb.destroy();
  }, 120_000);

  it('the connection of a caller’s transaction is killed after it took locks: the locks are gone, the next caller gets them', async () => {
    const result = await runScenario<KillCallerResult>({ kind: 'kill-caller-transaction' });
    report('fault: caller connection killed', result);
    recordFigures('faults.killCaller', result);

    expect(result.unhandled).toEqual([]);
    expect(result.cases).toHaveLength(3);
    for (const each of result.cases) {
      expect({ name: each.name, ok: each.outcome.ok, slotLockException: each.outcome.slotLockException }).toEqual({
        name: each.name,
        ok: false,
        slotLockException: false,
      });
      expect({ error: each.outcome.error, clear: isClearConnectionError(each.outcome.error) }).toEqual({
        error: each.outcome.error,
        clear: true,
      });
      expect(each).toEqual(
        expect.objectContaining({ heldByKilledOwner: 0, journalRowsLeft: 0, nextCallerGotAll: true }),
      );
      expect(each.msUntilFree).not.toBeNull();
    }
  });

  it('the service’s own connection is killed in the middle of a chunked acquisition: all keys or none, and not a SlotLockException', async () => {
    const result = await runScenario<KillChunkedResult>({
      kind: 'kill-chunked',
      rounds: 9,
      keysPerRound: 6000,
      maxPacket: 4096,
    });
    report('fault: service connection killed mid-acquisition', {
      ...result,
      rounds: result.rounds.map((r) => ({
        ...r,
        outcome: { ...r.outcome, error: r.outcome.error && { ...r.outcome.error, stack: undefined } },
      })),
    });
    recordFigures('faults.killChunked', result);

    expect(result.unhandled).toEqual([]);
    expect(result.statementsPerAcquisition).toBeGreaterThan(20);
    for (const round of result.rounds) {
      expect({ round: round.round, heldAllOrNone: round.heldAfter === 0 || round.heldAfter === round.keys }).toEqual({
        round: round.round,
        heldAllOrNone: true,
      });
      // What the caller was told matches what it holds.
      expect(round.heldAfter).toBe(round.outcome.ok ? round.keys : 0);
      expect(round.outcome.slotLockException).toBe(false);
      expect(round.recovered).toBe(true);
    }
    // The kills landed mid-way (some rows in, not all) and undid the whole acquisition.
    const midway = result.rounds.filter(
      (r) => r.rowsAtKill !== null && r.rowsAtKill > 0 && r.rowsAtKill < r.keys && !r.outcome.ok,
    );
    expect(midway.length).toBeGreaterThanOrEqual(result.rounds.length - 1);
  });

  describe.each(['stop', 'crash'] as const)('MariaDB %s under a live DataSource', (how) => {
    it('calls fail promptly with a clear error; after a restart the same DataSource works and the locks are still there', async () => {
      const result = await runScenario<ShutdownResult>({
        kind: 'shutdown',
        how,
        downMs: 2000,
        inFlightKeys: 6000,
        maxPacket: 4096,
      });
      report(`fault: MariaDB ${how} under a live DataSource`, {
        ...result,
        whileDown: result.whileDown.map((c) => `${c.call}: ${c.ok ? 'ok' : (c.error?.message ?? '?')} (${c.ms} ms)`),
      });
      recordFigures(`faults.shutdown.${how}`, result);

      expect(result.unhandled).toEqual([]);
      for (const call of result.whileDown) {
        expect({ call: call.call, ok: call.ok, slotLockException: call.slotLockException }).toEqual({
          call: call.call,
          ok: false,
          slotLockException: false,
        });
        expect({ error: call.error, clear: isClearConnectionError(call.error) }).toEqual({
          error: call.error,
          clear: true,
        });
        expect(call.ms).toBeLessThan(PROMPT_MS);
      }
      expect(result.load.during.slotLockExceptions + result.load.after.slotLockExceptions).toBe(0);
      expect(result.loadUnclear).toEqual([]);
      expect(result.loadMaxMs).toBeLessThan(PROMPT_MS);
      expect(result.load.after.ok).toBeGreaterThan(0);
      expect(result.locksAfterRestart).toBe(result.locksBefore);
      expect(result.partialOwners).toEqual([]);
      // The chunked acquisition in flight: all or nothing, and not a conflict.
      const inFlight = result.inFlightChunked;
      expect([0, inFlight.keys]).toContain(inFlight.heldAfterRestart);
      expect(inFlight.outcome.slotLockException).toBe(false);
      if (!inFlight.outcome.ok) expect(isClearConnectionError(inFlight.outcome.error)).toBe(true);
      expect(inFlight.rowsWhenStopped).toBeGreaterThan(0);
    });
  });
});
