/**
 * The assertions a race must pass, shared by the runs on one server and on the cluster.
 */
import type { runAllocation, runContention } from './scenarios';

/** The assertions of every contention run, on one server or a cluster. */
export function expectContentionHeld(run: Awaited<ReturnType<typeof runContention>>): void {
  const { totals, watcher } = run;
  expect({ escaped: totals.escaped, samples: totals.escapedSamples }).toEqual({ escaped: 0, samples: [] });
  expect({ unhandled: totals.unhandledSamples }).toEqual({ unhandled: [] });
  expect({
    partialSets: totals.partialSets,
    heldAfterConflict: totals.heldAfterConflict,
    malformedConflicts: totals.malformedConflicts,
    releaseMismatches: totals.releaseMismatches,
    leftAfterRelease: totals.leftAfterRelease,
    checkErrors: totals.checkErrors,
    watcherPartialSets: watcher.partialSets,
    watcherErrors: watcher.errors,
    samples: [...totals.violationSamples, ...watcher.samples],
  }).toEqual({
    partialSets: 0,
    heldAfterConflict: 0,
    malformedConflicts: 0,
    releaseMismatches: 0,
    leftAfterRelease: 0,
    checkErrors: 0,
    watcherPartialSets: 0,
    watcherErrors: 0,
    samples: [],
  });
  expect(totals.successes).toBeGreaterThan(0);
  expect(totals.conflicts).toBeGreaterThan(0); // there was contention to survive
  expect(watcher.scans).toBeGreaterThan(100);
  expect(run.lockRowsLeft.every((n) => n === 0)).toBe(true);
}

/**
 * The assertions of a run with slot locks: nothing escaped, no binding ever had two
 * resources, every resource held its lock, and nothing is left on any node; the
 * resources ever allocated per binding are what the allocators counted.
 */
export function expectAllocationHeld(run: Awaited<ReturnType<typeof runAllocation>>): void {
  expect({ escaped: run.totals.escaped, samples: run.totals.escapedSamples }).toEqual({ escaped: 0, samples: [] });
  expect({ unhandled: run.totals.unhandledSamples }).toEqual({ unhandled: [] });
  expect({
    doubleAllocationsSeen: run.totals.doubleAllocationsSeen,
    lockNotOurs: run.totals.lockNotOurs,
    releaseMismatches: run.totals.releaseMismatches,
    watcherDoubleAllocations: run.watcher.doubleAllocations,
    watcherResourcesWithoutLock: run.watcher.resourcesWithoutLock,
    watcherErrors: run.watcher.errors,
    samples: [...run.watcher.samples, ...run.totals.doubleAllocationSamples],
  }).toEqual({
    doubleAllocationsSeen: 0,
    lockNotOurs: 0,
    releaseMismatches: 0,
    watcherDoubleAllocations: 0,
    watcherResourcesWithoutLock: 0,
    watcherErrors: 0,
    samples: [],
  });
  expect(run.watcher.scans).toBeGreaterThan(100);
  for (const node of run.audit) {
    expect(node).toEqual(expect.objectContaining({ activeResources: 0, lockRows: 0 }));
    expect(node.resourcesPerBinding).toEqual(run.totals.perBinding);
  }
}
