import type { SlotLockService } from '../../../src';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';

/**
 * This package: `acquireLocks(owner, keys)` then `releaseLocks(owner)`. `contention`
 * is the counter countPackageRetries feeds (the package retries contention itself,
 * with jittered backoff).
 */
export function packageContender(
  service: SlotLockService,
  contention: ContentionCount,
  label = 'package',
): CycleContender {
  return {
    label,
    contention,
    cycle: async (caller) => {
      await service.acquireLocks(caller.owner, caller.keys);
      await service.releaseLocks(caller.owner);
    },
  };
}
