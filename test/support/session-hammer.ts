/**
 * Child process of the session race tests, started by {@link spawnWorkers}: for
 * `durationMs` it tries to take `key` for an owner of its own, as fast as it can, while
 * (with `reap`) a second loop calls `reapExpiredSessions()` just as fast. It reports
 * what it saw as one JSON line ({@link SessionHammerResult}).
 *
 * Once set up it takes `startedKey` for a marker owner: the parent, reading the lock
 * table, knows from it that this worker hammers from now on.
 */
import 'reflect-metadata';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DataSource } from 'typeorm';
import type { SlotLockReleasedEvent } from '../../src';
import { loadSlotLock } from './session-process';
import { readyBarrier, runWorker } from './spawn-workers';

/** What the parent gives each hammer. */
export interface SessionHammerConfig {
  readonly url: string;
  /** Where to load the package from (slotLockPackagePath()). */
  readonly packagePath: string;
  readonly runId: string;
  readonly workerId: number;
  /** The key every hammer wants. */
  readonly key: string;
  /** Taken once set up, for the owner {@link hammerMarkerOwner}: says "hammering now". */
  readonly startedKey: string;
  /** How long to hammer, from the moment the marker is taken. */
  readonly durationMs: number;
  /** Also call `reapExpiredSessions()` in a loop of its own. */
  readonly reap: boolean;
  /** After taking `key`, keep it (stop trying) rather than release it and go on. */
  readonly keepOnSuccess: boolean;
  /** The owner whose reaping this worker counts (its released events). */
  readonly watchOwner?: string;
  /** Before starting, wait until `key` is held (by the session the race is about). */
  readonly awaitHeld: boolean;
  /** Stop once `key` is seen held by another hammer (the race is decided). */
  readonly stopWhenHammerHolds: boolean;
}

/** What each hammer reports. */
export interface SessionHammerResult {
  readonly workerId: number;
  readonly owner: string;
  /** `Date.now()` when it began hammering, and when it stopped. */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly attempts: number;
  /** `Date.now()` of every acquisition of `key` that succeeded. */
  readonly successes: number[];
  /** SlotLockExceptions, by failure. */
  readonly held: number;
  readonly contention: number;
  /** Owners the SlotLockExceptions' lock maps named as holders of `key`, with how often. */
  readonly holdersSeen: Record<string, number>;
  readonly reapCalls: number;
  /** Totals of what `reapExpiredSessions()` returned. */
  readonly reapedSessions: number;
  readonly reapedLocks: number;
  /** Released events this process published for `watchOwner` (it reaped that owner's locks), with their counts. */
  readonly watchedReleases: number[];
  /** Errors other than SlotLockException, the first few. */
  readonly errors: Array<{ op: string; name: string; message: string }>;
  readonly errorCount: number;
}

/** The owner of a hammer's start marker. */
export function hammerMarkerOwner(runId: string, workerId: number): string {
  return `PHID-HAMR-${runId}-${workerId}-marker`;
}

async function main(config: SessionHammerConfig): Promise<SessionHammerResult> {
  const { SLOT_LOCK_CHANNELS, SlotLockException, SlotLockService, dataSourceOptionsFromUrl } = loadSlotLock(
    config.packagePath,
  );
  const dataSource = await new DataSource(dataSourceOptionsFromUrl(config.url)).initialize();
  const service = new SlotLockService(dataSource);
  const owner = `PHID-HAMR-${config.runId}-${config.workerId}`;
  const result = {
    workerId: config.workerId,
    owner,
    startedAt: 0,
    endedAt: 0,
    attempts: 0,
    successes: [] as number[],
    held: 0,
    contention: 0,
    holdersSeen: {} as Record<string, number>,
    reapCalls: 0,
    reapedSessions: 0,
    reapedLocks: 0,
    watchedReleases: [] as number[],
    errors: [] as Array<{ op: string; name: string; message: string }>,
    errorCount: 0,
  };
  const failed = (op: string, error: unknown): void => {
    result.errorCount += 1;
    if (result.errors.length < 5) {
      const { name, message } = error instanceof Error ? error : { name: typeof error, message: String(error) };
      result.errors.push({ op, name, message });
    }
  };
  const onReleased = (message: unknown): void => {
    const event = message as SlotLockReleasedEvent;
    if (event.ownerPHID === config.watchOwner) result.watchedReleases.push(event.count);
  };
  subscribe(SLOT_LOCK_CHANNELS.released, onReleased);

  await readyBarrier();
  while (config.awaitHeld && (await service.isLockFree(config.key))) await sleep(20);
  await service.acquireLocks(hammerMarkerOwner(config.runId, config.workerId), [config.startedKey]);
  result.startedAt = Date.now();
  const deadline = result.startedAt + config.durationMs;
  const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  let acquiringDone = false;
  const acquiring = async (): Promise<void> => {
    while (Date.now() < deadline) {
      await yieldTurn();
      result.attempts += 1;
      try {
        await service.acquireLocks(owner, [config.key]);
        result.successes.push(Date.now());
        if (config.keepOnSuccess) return;
        await service.releaseLocks(owner);
      } catch (error) {
        if (error instanceof SlotLockException) {
          if (error.failure === 'held') result.held += 1;
          else result.contention += 1;
          for (const holder of Object.values(error.getLockMap())) {
            result.holdersSeen[holder] = (result.holdersSeen[holder] ?? 0) + 1;
            if (config.stopWhenHammerHolds && holder.startsWith('PHID-HAMR-')) return;
          }
        } else {
          failed('acquireLocks', error);
        }
      }
    }
  };
  const reaping = async (): Promise<void> => {
    while (config.reap && !acquiringDone && Date.now() < deadline) {
      await yieldTurn();
      result.reapCalls += 1;
      try {
        const reaped = await service.reapExpiredSessions();
        result.reapedSessions += reaped.sessions;
        result.reapedLocks += reaped.locks;
      } catch (error) {
        failed('reapExpiredSessions', error);
      }
    }
  };
  await Promise.all([acquiring().finally(() => (acquiringDone = true)), reaping()]);
  result.endedAt = Date.now();
  unsubscribe(SLOT_LOCK_CHANNELS.released, onReleased);
  await service.close();
  await dataSource.destroy();
  return result;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (require.main === module) {
  runWorker<SessionHammerConfig, SessionHammerResult>(main);
}
