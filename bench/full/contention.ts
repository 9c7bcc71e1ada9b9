/**
 * Slot contention: N callers compete for `acquireSlot(owner, name, 4, { waitMs })`; each
 * holds its slot briefly, releases it, and goes again; a caller that finds all four held
 * waits in the package's line of this process's waiters for the family. N = 2, 8 and 32
 * run interleaved.
 *
 * Counted from what acquireSlot answers: a "failed attempt" is a statement of a
 * successful acquireSlot beyond its first (`AcquiredSlot.attempts - 1`, which with
 * `waitMs` counts every try of the wait: on MySQL a read that found every slot held or
 * an INSERT that met a slot taken since its read, elsewhere a try that found every slot
 * held or lost them to concurrent inserts); a "rejection" is a call that gave up (a
 * SlotLockException after `waitMs`; the caller then waits a random 0 to HOLD_MS ms and
 * asks again).
 */
import { performance } from 'node:perf_hooks';
import { SlotLockException, SlotLockService } from '../../src';
import { countPackageRetries } from '../lib/package-retries';
import { SilentLogger } from '../lib/silent-logger';
import type { ContentionCount } from '../lib/closed-loop';
import { openMysqlDataSource, openMysqlPool, truncateMysql } from '../lib/engines/mariadb';
import { interleave, type Arm } from '../lib/interleave';
import { coefficientOfVariation, median, sum } from '../lib/stats';

export interface ContentionSettings {
  readonly callerCounts: readonly number[];
  readonly slots: number;
  readonly holdMs: number;
  readonly rounds: number;
  readonly sliceMs: number;
}

export interface ContentionSlice {
  readonly seconds: number;
  readonly acquisitions: number;
  /** Statements of successful acquisitions beyond their first. */
  readonly failedAttempts: number;
  readonly rejections: number;
  /** Deadlocks and lock-wait timeouts the package met and retried. */
  readonly retries: number;
  readonly perSlot: readonly number[];
  readonly perCaller: readonly number[];
}

export interface ContentionResult {
  readonly settings: ContentionSettings;
  /** `rounds[round][callerCount]`. */
  readonly rounds: readonly (readonly ContentionSlice[])[];
}

const SLOT_NAME = 'bench.licence';
/** Long enough that a caller in line is never turned away while the others are served. */
const WAIT_MS = 10_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function benchContention(
  settings: ContentionSettings,
  progress: (text: string) => void,
): Promise<ContentionResult> {
  const retried: ContentionCount = { errors: 0 };
  const stopCounting = countPackageRetries(retried);
  const dataSource = await openMysqlDataSource(Math.max(...settings.callerCounts), new SilentLogger());
  const pool = openMysqlPool(1);
  const conflicts = { failedAttempts: 0, rejections: 0 };
  try {
    const service = new SlotLockService(dataSource);
    const slice = async (callers: number, durationMs: number): Promise<ContentionSlice> => {
      const before = { ...conflicts, retries: retried.errors };
      const perSlot = new Array<number>(settings.slots).fill(0);
      const perCaller = new Array<number>(callers).fill(0);
      const start = performance.now();
      const deadline = start + durationMs;
      await Promise.all(
        perCaller.map(async (_, caller) => {
          const owner = `PHID-SLOT-${callers}-${caller}`;
          while (performance.now() < deadline) {
            try {
              const { slot, attempts } = await service.acquireSlot(owner, SLOT_NAME, settings.slots, {
                waitMs: WAIT_MS,
              });
              conflicts.failedAttempts += attempts - 1;
              perSlot[slot] = (perSlot[slot] ?? 0) + 1;
              perCaller[caller] = (perCaller[caller] ?? 0) + 1;
              await sleep(settings.holdMs);
              await service.releaseLocks(owner);
            } catch (error) {
              if (!(error instanceof SlotLockException)) throw error;
              conflicts.rejections += 1;
              await sleep(Math.random() * settings.holdMs);
            }
          }
        }),
      );
      return {
        seconds: (performance.now() - start) / 1000,
        acquisitions: sum(perSlot),
        failedAttempts: conflicts.failedAttempts - before.failedAttempts,
        rejections: conflicts.rejections - before.rejections,
        retries: retried.errors - before.retries,
        perSlot,
        perCaller,
      };
    };
    const arms: Arm<ContentionSlice>[] = settings.callerCounts.map((callers) => ({
      label: `N=${callers}`,
      warmup: () => slice(callers, 200),
      measure: () => slice(callers, settings.sliceMs),
    }));
    progress(`  acquisitions/s with N = ${settings.callerCounts.join(' / ')}:`);
    const rounds = await interleave(arms, {
      rounds: settings.rounds,
      beforeSlice: () => truncateMysql(pool),
      onRound: (_, slices) => progress(` ${slices.map((s) => (s.acquisitions / s.seconds).toFixed(0)).join('/')}`),
    });
    progress('\n');
    return { settings, rounds };
  } finally {
    stopCounting();
    await Promise.allSettled([pool.end(), dataSource.destroy()]);
  }
}

export interface ContentionSummary {
  readonly callers: number;
  readonly acquisitionsPerSecond: number;
  /** Statements beyond the first per acquisition (see the file's comment). */
  readonly failedAttemptsPerAcquisition: number;
  readonly rejectionsPerAcquisition: number;
  readonly retriesPerAcquisition: number;
  /** Acquisitions of each slot, over every round. */
  readonly perSlot: readonly number[];
  readonly slotCv: number;
  /** How evenly the callers got the slots: CV of acquisitions per caller, over every round. */
  readonly callerCv: number;
  /** Median over rounds of (acquisitions/s at N) / (at the smallest N), within each round. */
  readonly vsSmallest: number;
}

/** Issue 12's slot target, read off one run. */
export interface ContentionTarget {
  readonly most: number;
  readonly fewer: number;
  /** Median over rounds of (acquisitions/s with the most callers) / (with fewer), within each round. */
  readonly ratio: number;
  readonly failedAttemptsPerAcquisition: number;
  readonly slotCv: number;
  /** At most 1 failed attempt per acquisition, at least as fast as fewer callers, slot CV within 0.05. */
  readonly met: boolean;
}

/** The most callers against the second most (32 against 8): issue 12's target 3. */
export function contentionTarget(result: ContentionResult): ContentionTarget {
  const counts = result.settings.callerCounts;
  const mostAt = counts.indexOf(Math.max(...counts));
  const fewerAt = counts.indexOf(Math.max(...counts.filter((count) => count !== counts[mostAt])));
  const rate = (slice: ContentionSlice): number => slice.acquisitions / slice.seconds;
  const ratio = median(result.rounds.map((round) => rate(round[mostAt]!) / rate(round[fewerAt]!)));
  const most = summarizeContention(result)[mostAt]!;
  return {
    most: counts[mostAt]!,
    fewer: counts[fewerAt]!,
    ratio,
    failedAttemptsPerAcquisition: most.failedAttemptsPerAcquisition,
    slotCv: most.slotCv,
    met: most.failedAttemptsPerAcquisition <= 1 && ratio >= 1 && most.slotCv <= 0.05,
  };
}

/** One line saying whether the target held. */
export function describeContentionTarget(target: ContentionTarget): string {
  return (
    `Target (issue 12): with ${target.most} callers at most 1 failed attempt per acquisition, at least as fast as ` +
    `${target.fewer} callers, slot CV within 0.05: ${target.failedAttemptsPerAcquisition.toFixed(2)} failed attempts, ` +
    `${target.ratio.toFixed(2)}x the rate of ${target.fewer} callers, slot CV ${target.slotCv.toFixed(3)}: ` +
    `${target.met ? 'met' : 'NOT met'}.`
  );
}

export function summarizeContention(result: ContentionResult): ContentionSummary[] {
  return result.settings.callerCounts.map((callers, index) => {
    const slices = result.rounds.map((round) => round[index]!);
    const acquisitions = sum(slices.map((s) => s.acquisitions));
    const perSlot = slices[0]!.perSlot.map((_, slot) => sum(slices.map((s) => s.perSlot[slot]!)));
    const perCaller = slices[0]!.perCaller.map((_, caller) => sum(slices.map((s) => s.perCaller[caller]!)));
    return {
      callers,
      acquisitionsPerSecond: median(slices.map((s) => s.acquisitions / s.seconds)),
      failedAttemptsPerAcquisition: sum(slices.map((s) => s.failedAttempts)) / Math.max(acquisitions, 1),
      rejectionsPerAcquisition: sum(slices.map((s) => s.rejections)) / Math.max(acquisitions, 1),
      retriesPerAcquisition: sum(slices.map((s) => s.retries)) / Math.max(acquisitions, 1),
      perSlot,
      slotCv: coefficientOfVariation(perSlot),
      callerCv: coefficientOfVariation(perCaller),
      vsSmallest: median(
        result.rounds.map(
          (round) => round[index]!.acquisitions / round[index]!.seconds / (round[0]!.acquisitions / round[0]!.seconds),
        ),
      ),
    };
  });
}
