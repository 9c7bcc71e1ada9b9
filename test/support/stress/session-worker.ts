/**
 * Child process of the session stress test (see ./session-children.ts): one role per
 * process (holder, waiter, load, aborter, blocker). Prints events as JSON lines on
 * stdout, each stamped with the wall clock (`at`), and obeys commands read from stdin.
 */
import 'reflect-metadata';
import { createInterface } from 'node:readline';
import type { DataSource } from 'typeorm';
import { SlotLockException, SlotLockService, SlotLockSessionLostError, type SlotLockSession } from '../../../src';
import { countOwned } from '../engines';
import {
  SESSION_CONFIG_ENV,
  medianOf,
  wallNow,
  type AbortConfig,
  type AbortResult,
  type LoadConfig,
  type LoadResult,
  type SessionWorkerConfig,
} from './session-children';
import { plantDeadSessionRow } from './session-targets';
import { openWarmDataSource } from './servers';
import { describeError, randomInt, randomSample, recordUnhandled, sample, sleep, type ErrorSample } from './worker-kit';

type Command = { readonly cmd: string; readonly [field: string]: unknown };

function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, at: wallNow(), ...fields })}\n`);
}

/** Calls `handle` for every command line on stdin, one at a time, in order. */
function onCommands(handle: (command: Command) => Promise<void>): void {
  let queue = Promise.resolve();
  lines().on('line', (line) => {
    if (line.trim() === '') return;
    const command = JSON.parse(line) as Command;
    queue = queue.then(() =>
      handle(command).catch((error: unknown) => {
        emit('error', { command: command.cmd, error: describeError(command.cmd, error) });
      }),
    );
  });
}

let stdinLines: ReturnType<typeof createInterface> | undefined;

/** stdin, line by line (one reader for the whole process). */
function lines(): ReturnType<typeof createInterface> {
  stdinLines ??= createInterface({ input: process.stdin });
  return stdinLines;
}

/** Resolves when the parent says `go` (so that every process of a scenario starts together). */
function go(): Promise<void> {
  return new Promise<void>((resolve) => {
    const onLine = (line: string): void => {
      if (line.trim() === '' || (JSON.parse(line) as Command).cmd !== 'go') return;
      lines().off('line', onLine);
      resolve();
    };
    lines().on('line', onLine);
  });
}

function errorName(error: unknown): { name: string; message: string; failure?: string } {
  const base = error instanceof Error ? error : new Error(String(error));
  return {
    name: base.name,
    message: base.message.slice(0, 300),
    ...(error instanceof SlotLockException ? { failure: error.failure } : {}),
  };
}

function exit(dataSource: DataSource, service: SlotLockService): void {
  void service
    .close()
    .then(() => dataSource.destroy())
    .finally(() => process.stdout.write('', () => process.exit(0)));
}

// --- holder: a session that holds keys ---------------------------------------------

async function holder(config: Extract<SessionWorkerConfig, { role: 'holder' }>): Promise<void> {
  const dataSource = await openWarmDataSource(config.url, 2);
  const service = new SlotLockService(dataSource);
  const session: SlotLockSession = await service.openSession({ ttlMs: config.ttlMs });
  session.signal.addEventListener('abort', () => {
    const reason: unknown = session.signal.reason;
    emit('lost', {
      reason: reason instanceof Error ? reason.message : String(reason),
      lostError: reason instanceof SlotLockSessionLostError,
    });
  });
  await service.acquireLocks(session.ownerPHID, config.keys);
  emit('held', { owner: session.ownerPHID });
  // The heartbeat's timers are unref'd; stdin keeps this process alive until `exit`.
  onCommands(async (command) => {
    switch (command.cmd) {
      case 'status':
        emit('status', {
          lost: session.lostReason !== undefined,
          reason: session.lostReason?.message,
          ownRows: await countOwned(dataSource, session.ownerPHID),
        });
        return;
      case 'acquire': {
        const keys = command.keys as string[];
        try {
          await service.acquireLocks(session.ownerPHID, keys);
          emit('acquire-result', { ok: true });
        } catch (error) {
          emit('acquire-result', { ok: false, error: errorName(error) });
        }
        return;
      }
      case 'close':
        emit('closed', { released: await session.close() });
        return;
      case 'exit':
        exit(dataSource, service);
        return;
    }
  });
}

// --- waiter: takes locks on command, waiting ---------------------------------------

async function waiter(config: Extract<SessionWorkerConfig, { role: 'waiter' }>): Promise<void> {
  const dataSource = await openWarmDataSource(config.url, 2);
  const service = new SlotLockService(dataSource, config.wait === undefined ? {} : { wait: config.wait });
  // Warm the code paths, so that the first measured acquisition is not also the first ever.
  await service.acquireLocks('PHID-WARM-waiter', [`warm(${process.pid})`]);
  await service.releaseLocks('PHID-WARM-waiter');
  emit('ready');
  onCommands(async (command) => {
    switch (command.cmd) {
      case 'acquire': {
        const owner = command.owner as string;
        const keys = command.keys as string[];
        emit('waiting');
        try {
          await service.acquireLocks(owner, keys, { waitMs: command.waitMs as number });
          emit('acquired');
        } catch (error) {
          emit('acquire-failed', { error: errorName(error) });
        }
        return;
      }
      case 'release':
        emit('released', { count: await service.releaseLocks(command.owner as string) });
        return;
      case 'exit':
        exit(dataSource, service);
        return;
    }
  });
}

// --- load: callers, sessions, dead sessions and a reaper around a live session -----

async function load(config: Extract<SessionWorkerConfig, { role: 'load' }> & LoadConfig): Promise<void> {
  const unhandled = recordUnhandled();
  const dataSource = await openWarmDataSource(config.url, config.callers + 2);
  const service = new SlotLockService(dataSource);
  const pool = Array.from({ length: 30 }, (_, i) => `${config.prefix}.k(${i})`);
  const counts = {
    cycles: 0,
    sessionCycles: 0,
    sessionsLost: 0,
    conflicts: 0,
    heldKeyTries: 0,
    heldKeyWins: 0,
    deadPlanted: 0,
  };
  const reaped = { sessions: 0, locks: 0, calls: 0 };
  const errors: ErrorSample[] = [];
  const unexpected = (op: string, error: unknown): void => sample(errors, describeError(op, error));
  emit('ready');
  await go();
  const end = Date.now() + config.durationMs;

  const caller = async (index: number): Promise<void> => {
    for (let cycle = 0; Date.now() < end; cycle += 1) {
      const owner = `PHID-LOAD-${process.pid}-${index}-${cycle}`;
      const roll = Math.random();
      if (roll < 0.15) {
        // The live session's key: never to be had, waiting or not.
        counts.heldKeyTries += 1;
        try {
          await service.acquireLocks(owner, [config.heldKey], roll < 0.05 ? { waitMs: 30 } : {});
          counts.heldKeyWins += 1;
          await service.releaseLocks(owner);
        } catch (error) {
          if (!(error instanceof SlotLockException)) unexpected('acquireLocks(held key)', error);
        }
        continue;
      }
      const keys = randomSample(pool, 1 + randomInt(2));
      try {
        if (roll < 0.3) {
          // A short session of its own: session rows come and go beside the live one.
          const session = await service.openSession({ ttlMs: 300 + randomInt(700) });
          try {
            await service.acquireLocks(session.ownerPHID, keys, { waitMs: 20 });
            await sleep(randomInt(2));
            counts.sessionCycles += 1;
          } catch (error) {
            if (error instanceof SlotLockException) counts.conflicts += 1;
            else if (error instanceof SlotLockSessionLostError) counts.sessionsLost += 1;
            else unexpected('acquireLocks(session)', error);
          } finally {
            await session.close();
          }
        } else {
          await service.acquireLocks(owner, keys, { waitMs: 20 });
          await sleep(randomInt(2));
          await service.releaseLocks(owner);
          counts.cycles += 1;
        }
      } catch (error) {
        if (error instanceof SlotLockException) counts.conflicts += 1;
        else unexpected('cycle', error);
      }
    }
  };

  const reaper = async (): Promise<void> => {
    while (Date.now() < end) {
      try {
        const freed = await service.reapExpiredSessions();
        reaped.sessions += freed.sessions;
        reaped.locks += freed.locks;
        reaped.calls += 1;
      } catch (error) {
        unexpected('reapExpiredSessions', error);
      }
      await sleep(randomInt(5));
    }
  };

  const planter = async (everyMs: number): Promise<void> => {
    for (let n = 0; Date.now() < end; n += 1) {
      // A dead process's session: an expired row, and locks on keys the callers want.
      const owner = `PHID-SESS-dead-${process.pid}-${n}`;
      try {
        await service.acquireLocks(owner, randomSample(pool, 2));
        await plantDeadSessionRow(dataSource, owner);
        counts.deadPlanted += 1;
      } catch (error) {
        if (!(error instanceof SlotLockException)) unexpected('plant a dead session', error);
        await service.releaseLocks(owner).catch(() => undefined);
      }
      await sleep(everyMs);
    }
  };

  await Promise.all([
    ...Array.from({ length: config.callers }, (_, index) => caller(index)),
    ...(config.reaper ? [reaper()] : []),
    ...(config.plantDeadEveryMs !== undefined ? [planter(config.plantDeadEveryMs)] : []),
  ]);
  const result: LoadResult = { ...counts, reaped, errors, unhandled };
  emit('done', { result });
  exit(dataSource, service);
}

// --- aborter: waits aborted at random moments --------------------------------------

/** How an iteration times its abort. */
const ABORT_MODES = [
  // Right after the call: the first statement is in flight, on keys nobody else wants (it succeeds, and must be given back).
  'in flight, free keys',
  // Right after the call, on the contended key too (the statement may succeed or fail).
  'in flight, contended',
  // 0-3 ms in: mostly in flight or in the first pauses.
  'after 0-3 ms',
  // 0-60 ms in: mostly during a pause.
  'after 0-60 ms',
] as const;

async function aborter(config: Extract<SessionWorkerConfig, { role: 'aborter' }> & AbortConfig): Promise<void> {
  const unhandled = recordUnhandled();
  const dataSource = await openWarmDataSource(config.url, 3);
  const service = new SlotLockService(dataSource);
  const errors: ErrorSample[] = [];
  const tallies = new Map<
    string,
    { runs: number; acquired: number; aborted: number; timedOut: number; leftovers: number; rejectMs: number[] }
  >();
  emit('ready');
  await go();

  for (let i = 0; i < config.iterations; i += 1) {
    const mode = ABORT_MODES[i % ABORT_MODES.length]!;
    let tally = tallies.get(mode);
    if (tally === undefined) {
      tally = { runs: 0, acquired: 0, aborted: 0, timedOut: 0, leftovers: 0, rejectMs: [] };
      tallies.set(mode, tally);
    }
    tally.runs += 1;
    const owner = `${config.ownerPrefix}${i}`;
    const own = `abort.own(${i})`;
    const keys = mode === 'in flight, free keys' ? [own] : [config.contendedKey, own];
    const controller = new AbortController();
    let abortedAt = 0;
    const abort = (): void => {
      abortedAt = wallNow();
      controller.abort();
    };
    const call = service.acquireLocks(owner, keys, { waitMs: config.waitMs, signal: controller.signal });
    let timer: NodeJS.Timeout | undefined;
    if (mode.startsWith('in flight')) abort();
    else timer = setTimeout(abort, mode === 'after 0-3 ms' ? Math.random() * 3 : Math.random() * 60);
    try {
      await call;
      clearTimeout(timer);
      tally.acquired += 1;
      await service.releaseLocks(owner);
      continue;
    } catch (error) {
      clearTimeout(timer);
      const rejectedAt = wallNow();
      if (error instanceof Error && error.name === 'AbortError') {
        tally.aborted += 1;
        tally.rejectMs.push(rejectedAt - abortedAt);
      } else if (error instanceof SlotLockException) {
        tally.timedOut += 1;
      } else {
        sample(errors, describeError(`acquireLocks (${mode})`, error));
      }
    }
    // Rejected: nothing of the call may be held, neither key.
    const left = await countOwned(dataSource, owner);
    if (left > 0) {
      tally.leftovers += left;
      await service.releaseLocks(owner);
    }
  }

  const modes: AbortResult['modes'] = {};
  for (const [mode, t] of tallies) {
    modes[mode] = {
      runs: t.runs,
      acquired: t.acquired,
      aborted: t.aborted,
      timedOut: t.timedOut,
      leftovers: t.leftovers,
      rejectMedianMs: t.rejectMs.length === 0 ? 0 : medianOf(t.rejectMs),
      rejectMaxMs: t.rejectMs.length === 0 ? 0 : Math.max(...t.rejectMs),
    };
  }
  const result: AbortResult = { modes, errors, unhandled };
  emit('done', { result });
  exit(dataSource, service);
}

// --- blocker: keeps taking and releasing one key -----------------------------------

async function blocker(config: Extract<SessionWorkerConfig, { role: 'blocker' }>): Promise<void> {
  const dataSource = await openWarmDataSource(config.url, 2);
  const service = new SlotLockService(dataSource);
  const owner = `PHID-BLOCK-${process.pid}`;
  let running = true;
  let cycles = 0;
  emit('ready');
  const loop = (async () => {
    while (running) {
      try {
        await service.acquireLocks(owner, [config.key]);
        cycles += 1;
        await sleep(randomInt(15));
        await service.releaseLocks(owner);
      } catch (error) {
        if (!(error instanceof SlotLockException)) throw error;
      }
      await sleep(randomInt(15));
    }
  })();
  onCommands(async (command) => {
    if (command.cmd !== 'stop') return;
    running = false;
    await loop;
    emit('stopped', { cycles });
    exit(dataSource, service);
  });
}

async function main(): Promise<void> {
  const raw = process.env[SESSION_CONFIG_ENV];
  if (raw === undefined) throw new Error(`${SESSION_CONFIG_ENV} is not set: start this file with startWorker()`);
  const config = JSON.parse(raw) as SessionWorkerConfig;
  switch (config.role) {
    case 'holder':
      return holder(config);
    case 'waiter':
      return waiter(config);
    case 'load':
      return load(config);
    case 'aborter':
      return aborter(config);
    case 'blocker':
      return blocker(config);
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    emit('error', { error: describeError('main', error) });
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, () =>
      process.exit(1),
    );
  });
}
