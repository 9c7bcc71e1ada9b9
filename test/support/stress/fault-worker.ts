/**
 * Child process of the fault tests (see ./faults.ts): runs one scenario against the
 * throwaway server and prints what happened. Uncaught exceptions and unhandled
 * rejections are recorded, not fatal, so that the test can report them.
 */
import 'reflect-metadata';
import type { DataSource, QueryRunner } from 'typeorm';
import { SlotLockException, SlotLockService, digestForIndex } from '../../../src';
import { runWorker } from '../spawn-workers';
import {
  JOURNAL_TABLE,
  isClearConnectionError,
  type CallOutcome,
  type FaultWorkerConfig,
  type FaultWorkerResult,
  type KillCallerResult,
  type KillChunkedResult,
  type ShutdownResult,
} from './faults';
import { openDataSource, scratchMariadb } from './servers';
import { describeError, randomInt, recordUnhandled, sample, sleep, type ErrorSample } from './worker-kit';

/** Calls `fn` and reports how it ended and how long it took. */
async function outcomeOf(call: string, fn: () => Promise<unknown>): Promise<CallOutcome> {
  const started = Date.now();
  try {
    await fn();
    return { call, ok: true, ms: Date.now() - started, slotLockException: false };
  } catch (error) {
    return {
      call,
      ok: false,
      ms: Date.now() - started,
      slotLockException: error instanceof SlotLockException,
      error: describeError(call, error),
    };
  }
}

async function countOwned(dataSource: DataSource, owner: string): Promise<number> {
  const [row] = (await dataSource.query('SELECT COUNT(*) AS n FROM drydock_slotlock WHERE ownerPHID = ?', [
    owner,
  ])) as Array<{ n: string }>;
  return Number(row!.n);
}

/** Polls until every key reads as free; resolves to how long that took, or null after `timeoutMs`. */
async function msUntilFree(service: SlotLockService, keys: string[], timeoutMs = 10_000): Promise<number | null> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await service.areLocksFree(keys)) return Date.now() - started;
    await sleep(20);
  }
  return null;
}

// --- kill the connection of a caller's transaction ------------------------------------

async function killCallerTransaction(url: string, unhandled: ErrorSample[]): Promise<KillCallerResult> {
  const dataSource = await openDataSource(url, { poolSize: 4 });
  const admin = await openDataSource(url, { poolSize: 1 });
  const service = new SlotLockService(dataSource);
  const cases: KillCallerResult['cases'] = [];

  /** Kills the connection `manager` runs on, from another connection. */
  const killOwnConnection = async (manager: { query: DataSource['query'] }): Promise<void> => {
    const [row] = (await manager.query('SELECT CONNECTION_ID() AS id')) as Array<{ id: number | string }>;
    await admin.query(`KILL CONNECTION ${Number(row!.id)}`);
  };

  const runCase = async (name: string, owner: string, keys: string[], call: () => Promise<unknown>): Promise<void> => {
    const outcome = await outcomeOf(name, call);
    const free = await msUntilFree(service, keys);
    const heldByKilledOwner = await countOwned(dataSource, owner);
    const [journal] = (await dataSource.query(`SELECT COUNT(*) AS n FROM ${JOURNAL_TABLE} WHERE note = ?`, [
      owner,
    ])) as Array<{ n: string }>;
    const next = `${owner}-next`;
    let nextCallerGotAll = false;
    try {
      await service.acquireLocks(next, keys);
      nextCallerGotAll = (await countOwned(dataSource, next)) === keys.length;
      await service.releaseLocks(next);
    } catch {
      nextCallerGotAll = false;
    }
    cases.push({
      name,
      outcome,
      heldByKilledOwner,
      journalRowsLeft: Number(journal!.n),
      msUntilFree: free,
      nextCallerGotAll,
    });
  };

  const keysFor = (label: string): string[] => [0, 1, 2].map((i) => `fault.caller(${label}).key(${i})`);

  await runCase(
    'acquireLocks({ manager }) took locks, then the connection was killed',
    'PHID-FAULT-caller-tx',
    keysFor('tx'),
    () =>
      dataSource.transaction(async (manager) => {
        await manager.query(`INSERT INTO ${JOURNAL_TABLE} (note) VALUES (?)`, ['PHID-FAULT-caller-tx']);
        await service.acquireLocks('PHID-FAULT-caller-tx', keysFor('tx'), { manager });
        await killOwnConnection(manager);
        await manager.query('SELECT 1'); // the caller's next statement meets the dead connection
      }),
  );
  await runCase(
    'commitWithLocks: the work took locks and wrote, then its connection was killed',
    'PHID-FAULT-caller-cwl',
    keysFor('cwl'),
    () =>
      service.commitWithLocks('PHID-FAULT-caller-cwl', keysFor('cwl'), async (manager) => {
        await manager.query(`INSERT INTO ${JOURNAL_TABLE} (note) VALUES (?)`, ['PHID-FAULT-caller-cwl']);
        await killOwnConnection(manager);
        await manager.query('SELECT 1');
      }),
  );
  await runCase(
    'acquireLocks({ manager }) took locks, then the connection was killed before COMMIT',
    'PHID-FAULT-caller-commit',
    keysFor('commit'),
    () =>
      dataSource.transaction(async (manager) => {
        await service.acquireLocks('PHID-FAULT-caller-commit', keysFor('commit'), { manager });
        await killOwnConnection(manager);
        // dataSource.transaction's own COMMIT meets the dead connection.
      }),
  );

  await admin.destroy();
  await dataSource.destroy();
  return { kind: 'kill-caller-transaction', cases, unhandled };
}

// --- kill the service's own connection in a chunked acquisition -----------------------

async function killChunked(
  url: string,
  scenario: Extract<FaultWorkerConfig['scenario'], { kind: 'kill-chunked' }>,
  unhandled: ErrorSample[],
): Promise<KillChunkedResult> {
  const admin = await openDataSource(url, { poolSize: 1 });
  const spy = await openDataSource(url, { poolSize: 1 });
  const blockers = await openDataSource(url, { poolSize: 1 });
  await spy.query('SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED');
  // A small packet makes one acquisition many INSERT statements (SPEC 4.1). Set before the
  // DataSource connects: a session reads the global value when it connects.
  const [previous] = (await admin.query('SELECT @@GLOBAL.max_allowed_packet AS v')) as Array<{ v: string }>;
  await admin.query(`SET GLOBAL max_allowed_packet = ${scenario.maxPacket}`);
  const rounds: KillChunkedResult['rounds'] = [];
  let statementsPerAcquisition = 0;
  try {
    const dataSource = await openDataSource(url, { poolSize: 3 });
    const service = new SlotLockService(dataSource);
    const keysOf = (round: number): string[] =>
      Array.from({ length: scenario.keysPerRound }, (_, i) => `fault.chunked(r${round}).key(${i})`);

    // One acquisition without a fault, to count its statements (the server's Com_insert).
    const inserts = async (): Promise<number> => {
      const [row] = (await admin.query("SHOW GLOBAL STATUS LIKE 'Com_insert'")) as Array<{ Value: string }>;
      return Number(row!.Value);
    };
    const before = await inserts();
    await service.acquireLocks('PHID-FAULT-chunked-probe', keysOf(-1));
    statementsPerAcquisition = (await inserts()) - before;
    await service.releaseLocks('PHID-FAULT-chunked-probe');

    for (let round = 0; round < scenario.rounds; round += 1) {
      const owner = `PHID-FAULT-chunked-r${round}`;
      const keys = keysOf(round);
      const how = KILLS[round % KILLS.length]!;
      // Somewhere between a tenth and nine tenths of the way through the rows, in the
      // order the service sends them (by lock index).
      const inOrder = [...keys].sort((a, b) => (digestForIndex(a) < digestForIndex(b) ? -1 : 1));
      const threshold = Math.floor(keys.length * (0.1 + Math.random() * 0.8));

      // For the "while blocked" kills, another transaction holds the threshold's row
      // uncommitted, so the service's INSERT waits on it when it gets there.
      let blocker: QueryRunner | undefined;
      if (how.blocked) {
        blocker = blockers.createQueryRunner();
        await blocker.startTransaction();
        const blockKey = inOrder[threshold]!;
        await blocker.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
          'PHID-FAULT-blocker',
          digestForIndex(blockKey),
          blockKey,
        ]);
      }

      let settled = false;
      const acquisition = outcomeOf('acquireLocks (chunked)', () => service.acquireLocks(owner, keys)).finally(() => {
        settled = true;
      });
      let rowsAtKill: number | null = null;
      while (!settled) {
        // READ UNCOMMITTED: the rows the acquisition has inserted so far, not yet committed.
        const inserted = await countOwned(spy, owner);
        const victim = how.blocked
          ? await blockedConnection(spy)
          : inserted >= threshold
            ? await acquiringConnection(spy)
            : undefined;
        if (victim !== undefined) {
          rowsAtKill = inserted;
          await admin.query(`KILL ${how.kill} ${victim}`);
          break;
        }
        await sleep(2);
      }
      const outcome = await acquisition;
      if (blocker !== undefined) {
        await blocker.rollbackTransaction();
        await blocker.release();
      }
      const heldAfter = await countOwned(dataSource, owner);
      await service.releaseLocks(owner).catch(() => undefined);
      const recovered =
        (
          await outcomeOf('recover', async () => {
            await service.acquireLocks(`${owner}-after`, [`fault.chunked(r${round}).after`]);
            await service.releaseLocks(`${owner}-after`);
          })
        ).ok && (await countOwned(dataSource, `${owner}-after`)) === 0;
      rounds.push({
        round,
        kill: rowsAtKill === null ? 'none (finished first)' : how.name,
        rowsAtKill,
        keys: keys.length,
        outcome,
        heldAfter,
        recovered,
      });
    }
    await dataSource.destroy();
  } finally {
    await admin.query(`SET GLOBAL max_allowed_packet = ${Number(previous!.v)}`);
    await admin.destroy();
    await spy.destroy();
    await blockers.destroy();
  }
  return { kind: 'kill-chunked', maxAllowedPacket: scenario.maxPacket, rounds, statementsPerAcquisition, unhandled };
}

/** The three ways a chunked acquisition is killed, in turn. */
const KILLS = [
  { name: 'KILL CONNECTION mid-way', kill: 'CONNECTION', blocked: false },
  { name: 'KILL QUERY while its INSERT waits for a row lock', kill: 'QUERY', blocked: true },
  { name: 'KILL CONNECTION while its INSERT waits for a row lock', kill: 'CONNECTION', blocked: true },
] as const;

/** The connection whose INSERT into the lock table has waited for over 200 ms, if one has. */
async function blockedConnection(spy: DataSource): Promise<number | undefined> {
  const rows = (await spy.query(
    'SELECT ID AS id FROM information_schema.PROCESSLIST ' +
      "WHERE ID <> CONNECTION_ID() AND INFO LIKE 'INSERT INTO%drydock_slotlock%' AND TIME_MS > 200",
  )) as Array<{ id: string }>;
  return rows.length === 1 ? Number(rows[0]!.id) : undefined;
}

/** The connection whose transaction is inserting locks (the service's own), if one is. */
async function acquiringConnection(spy: DataSource): Promise<number | undefined> {
  const rows = (await spy.query(
    'SELECT trx_mysql_thread_id AS id FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() ' +
      'UNION SELECT ID FROM information_schema.PROCESSLIST ' +
      "WHERE ID <> CONNECTION_ID() AND INFO LIKE 'INSERT INTO%drydock_slotlock%'",
  )) as Array<{ id: string }>;
  return rows.length === 1 ? Number(rows[0]!.id) : undefined;
}

// --- shut the server down under a live DataSource -------------------------------------

type Phase = 'before' | 'during' | 'after';

async function shutdown(
  url: string,
  scenario: Extract<FaultWorkerConfig['scenario'], { kind: 'shutdown' }>,
  unhandled: ErrorSample[],
): Promise<ShutdownResult> {
  // A small packet, so that the acquisition in flight at the outage is many statements
  // (the restarted server is back to its configured packet size).
  await withServerConnection(url, (admin) => admin.query(`SET GLOBAL max_allowed_packet = ${scenario.maxPacket}`));
  const dataSource = await openDataSource(url, { poolSize: 6 });
  const spy = await openDataSource(url, { poolSize: 1 });
  await spy.query('SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED');
  const service = new SlotLockService(dataSource);
  const beforeOwner = `PHID-FAULT-before-${scenario.how}`;
  const beforeKeys = Array.from({ length: 5 }, (_, i) => `fault.shutdown(${scenario.how}).before(${i})`);
  await service.acquireLocks(beforeOwner, beforeKeys);
  const locksBefore = await countOwned(dataSource, beforeOwner);

  // Background load: 4 callers on fresh keys (so no conflict is possible), cycling
  // acquire → release through the whole outage.
  let phase: Phase = 'before';
  let loading = true;
  const load: ShutdownResult['load'] = {
    before: { ok: 0, failed: 0, slotLockExceptions: 0 },
    during: { ok: 0, failed: 0, slotLockExceptions: 0 },
    after: { ok: 0, failed: 0, slotLockExceptions: 0 },
  };
  let loadMaxMs = 0;
  const loadUnclear: ErrorSample[] = [];
  const loadCall = async (name: string, fn: () => Promise<unknown>): Promise<boolean> => {
    const startedIn = phase;
    const outcome = await outcomeOf(name, fn);
    const counts = load[startedIn === 'after' ? 'after' : phase === 'before' ? 'before' : 'during'];
    loadMaxMs = Math.max(loadMaxMs, outcome.ms);
    if (outcome.ok) counts.ok += 1;
    else {
      counts.failed += 1;
      if (outcome.slotLockException) counts.slotLockExceptions += 1;
      if (!isClearConnectionError(outcome.error)) sample(loadUnclear, outcome.error!);
    }
    return outcome.ok;
  };
  const loader = async (loop: number): Promise<void> => {
    for (let cycle = 0; loading; cycle += 1) {
      const size = 1 + randomInt(3);
      const owner = `PHID-FAULT-load-${loop}-${cycle}-n${size}`;
      const keys = Array.from({ length: size }, (_, i) => `fault.load(${loop},${cycle},${i})`);
      const took =
        cycle % 2 === 0
          ? await loadCall('acquireLocks', () => service.acquireLocks(owner, keys))
          : await loadCall('commitWithLocks', () => service.commitWithLocks(owner, keys, (m) => m.query('SELECT 1')));
      if (took) await loadCall('releaseLocks', () => service.releaseLocks(owner));
      await sleep(randomInt(5));
    }
  };
  const loaders = Promise.all([0, 1, 2, 3].map(loader));
  await sleep(500);

  // A long chunked acquisition in flight when the server goes: stopped part-way in.
  const inFlightOwner = `PHID-FAULT-inflight-${scenario.how}`;
  const inFlightKeys = Array.from({ length: scenario.inFlightKeys }, (_, i) => `fault.inflight(${i})`);
  let inFlightDone = false;
  const inFlight = outcomeOf('acquireLocks (chunked, in flight)', () =>
    service.acquireLocks(inFlightOwner, inFlightKeys),
  ).finally(() => {
    inFlightDone = true;
  });
  let rowsWhenStopped = 0;
  while (!inFlightDone && rowsWhenStopped < inFlightKeys.length / 4) {
    rowsWhenStopped = await countOwned(spy, inFlightOwner);
    await sleep(2);
  }

  phase = 'during';
  if (scenario.how === 'stop') await scratchMariadb.stop();
  else await scratchMariadb.crash();
  const downAt = Date.now();

  // Every public method, twice: once as the outage is discovered, once with nothing left in the pool.
  const whileDown: CallOutcome[] = [];
  const owner = 'PHID-FAULT-while-down';
  const keys = ['fault.down(0)', 'fault.down(1)'];
  for (let pass = 1; pass <= 2; pass += 1) {
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['acquireLocks', () => service.acquireLocks(owner, keys)],
      ['acquireLocks (chunked, 3,000 keys)', () => service.acquireLocks(owner, chunkedKeys(3000))],
      ['releaseLocks', () => service.releaseLocks(owner)],
      ['loadLocks', () => service.loadLocks(owner)],
      ['loadHeldLocks', () => service.loadHeldLocks(keys)],
      ['isLockFree', () => service.isLockFree(keys[0]!)],
      ['areLocksFree', () => service.areLocksFree(keys)],
      ['acquireSlot', () => service.acquireSlot(owner, 'fault.down.slots', 3)],
      ['commitWithLocks', () => service.commitWithLocks(owner, keys, () => 'work')],
      ['withLocks', () => service.withLocks(owner, keys, () => 'fn')],
      [
        'acquireLocks({ manager })',
        () => dataSource.transaction((m) => service.acquireLocks(owner, keys, { manager: m })),
      ],
    ];
    for (const [name, fn] of calls) whileDown.push(await outcomeOf(`${name} #${pass}`, fn));
  }
  const elapsedDown = Date.now() - downAt;
  if (elapsedDown < scenario.downMs) await sleep(scenario.downMs - elapsedDown);

  await scratchMariadb.start();
  const downMs = Date.now() - downAt;
  phase = 'after';

  // The same DataSource, again: count the failures before its first success.
  let failuresAfterRestart = 0;
  const restartedAt = Date.now();
  let locksAfterRestart = -1;
  while (Date.now() - restartedAt < 30_000) {
    try {
      locksAfterRestart = (await service.loadLocks(beforeOwner)).length;
      break;
    } catch {
      failuresAfterRestart += 1;
      await sleep(50);
    }
  }
  const msToFirstSuccessAfterRestart = Date.now() - restartedAt;
  const inFlightOutcome = await inFlight;
  const inFlightHeldAfterRestart = await countOwned(dataSource, inFlightOwner);
  await service.releaseLocks(inFlightOwner);
  await spy.destroy();

  await sleep(1000);
  loading = false;
  await loaders;

  // All or nothing across the outage: every owner holds its whole set or nothing.
  const owners = (await dataSource.query(
    'SELECT CAST(ownerPHID AS CHAR) AS owner, COUNT(*) AS n FROM drydock_slotlock GROUP BY ownerPHID',
  )) as Array<{ owner: string; n: string }>;
  const partialOwners: string[] = [];
  let wholeSetsLeftByFailedReleases = 0;
  for (const row of owners) {
    const expected = /-n(\d+)$/.exec(row.owner)?.[1];
    if (expected === undefined) continue;
    if (Number(row.n) === Number(expected)) wholeSetsLeftByFailedReleases += 1;
    else partialOwners.push(`${row.owner} holds ${row.n}`);
    await service.releaseLocks(row.owner);
  }
  await service.releaseLocks(beforeOwner);
  await service.releaseLocks(owner);
  await dataSource.destroy();

  return {
    kind: 'shutdown',
    how: scenario.how,
    locksBefore,
    locksAfterRestart,
    whileDown,
    load,
    loadMaxMs,
    loadUnclear,
    failuresAfterRestart,
    msToFirstSuccessAfterRestart,
    partialOwners,
    wholeSetsLeftByFailedReleases,
    downMs,
    inFlightChunked: {
      keys: inFlightKeys.length,
      rowsWhenStopped,
      outcome: inFlightOutcome,
      heldAfterRestart: inFlightHeldAfterRestart,
    },
    unhandled,
  };
}

/** Runs `fn` on a short-lived connection to the server of `url`. */
async function withServerConnection<T>(url: string, fn: (admin: DataSource) => Promise<T>): Promise<T> {
  const admin = await openDataSource(url, { poolSize: 1 });
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

function chunkedKeys(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `fault.down.chunked(${i})`.padEnd(200, '.'));
}

async function main(config: FaultWorkerConfig): Promise<FaultWorkerResult> {
  const unhandled = recordUnhandled();
  const { scenario } = config;
  switch (scenario.kind) {
    case 'kill-caller-transaction':
      return killCallerTransaction(config.url, unhandled);
    case 'kill-chunked':
      return killChunked(config.url, scenario, unhandled);
    case 'shutdown':
      return shutdown(config.url, scenario, unhandled);
  }
}

if (require.main === module) {
  runWorker<FaultWorkerConfig, FaultWorkerResult>(main);
}
