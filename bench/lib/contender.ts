import type { Caller } from './callers';
import type { ContentionCount } from './closed-loop';

/** Something that takes a caller's whole set of locks and releases it: one cycle. */
export interface CycleContender {
  readonly label: string;
  readonly cycle: (caller: Caller) => Promise<void>;
  /** Contention errors it met and retried (deadlocks, lock-wait timeouts, busy). */
  readonly contention: ContentionCount;
}
