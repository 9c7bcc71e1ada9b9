import { performance } from 'node:perf_hooks';

/** Contention errors (deadlocks, lock-wait timeouts) a contender met and retried. */
export interface ContentionCount {
  errors: number;
}

/** What one contender did in one time slice. */
export interface LoopResult {
  readonly cycles: number;
  readonly seconds: number;
  readonly cyclesPerSecond: number;
  /** Contention errors met (and retried) during the slice. */
  readonly contentionErrors: number;
  /** This process's CPU time (user + system) per cycle, in microseconds: the client's own cost. */
  readonly cpuMicrosPerCycle: number;
}

/**
 * Closed loop: every caller runs `cycle` back to back until `durationMs` has passed
 * (a cycle started before the deadline finishes); counts the cycles completed.
 */
export async function closedLoop<C>(
  callers: readonly C[],
  durationMs: number,
  cycle: (caller: C) => Promise<void>,
  contention: ContentionCount = { errors: 0 },
): Promise<LoopResult> {
  const errorsBefore = contention.errors;
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const deadline = start + durationMs;
  const counts = await Promise.all(
    callers.map(async (caller) => {
      let cycles = 0;
      while (performance.now() < deadline) {
        await cycle(caller);
        cycles += 1;
      }
      return cycles;
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cycles = counts.reduce((total, count) => total + count, 0);
  return {
    cycles,
    seconds,
    cyclesPerSecond: cycles / seconds,
    contentionErrors: contention.errors - errorsBefore,
    cpuMicrosPerCycle: (cpu.user + cpu.system) / Math.max(cycles, 1),
  };
}

/** Contention errors per 1000 cycles over several slices. */
export function contentionPerThousand(slices: readonly LoopResult[]): number {
  const errors = slices.reduce((total, slice) => total + slice.contentionErrors, 0);
  const cycles = slices.reduce((total, slice) => total + slice.cycles, 0);
  return (1000 * errors) / Math.max(cycles, 1);
}
