/**
 * Messages between `slotlock demo` and its allocator processes (child_process.fork, IPC).
 */

/** What each allocator is started with (JSON, in {@link ALLOCATOR_CONFIG_ENV}). */
/**
 * The environment variable that hands an allocator its {@link AllocatorConfig} (JSON). Not
 * an argument: the config holds the database URL, password included, and any user of the
 * machine can read a process's arguments (`ps`), but only its owner its environment.
 */
export const ALLOCATOR_CONFIG_ENV = 'SLOTLOCK_DEMO_ALLOCATOR';

export interface AllocatorConfig {
  /** The demo database, with the lock table and the `binding` and `resource` tables. */
  readonly url: string;
  /** 1-based number, for names and output. */
  readonly allocator: number;
  /** The pause between loading the free bindings and allocating, drawn from this range (the seed's sleep(10)). */
  readonly minPauseMs: number;
  readonly maxPauseMs: number;
}

/** Parent to allocator. */
export type DemoCommand =
  { readonly type: 'round'; readonly round: number; readonly useSlotLocks: boolean } | { readonly type: 'exit' };

/** Allocator to parent. */
export type AllocatorEvent =
  | { readonly type: 'ready'; readonly allocator: number }
  | {
      readonly type: 'loaded';
      readonly allocator: number;
      readonly round: number;
      readonly freeBindings: readonly number[];
      readonly pauseMs: number;
    }
  | {
      readonly type: 'allocated';
      readonly allocator: number;
      readonly round: number;
      readonly bindingId: number;
      readonly resourcePHID: string;
    }
  | {
      readonly type: 'conflict';
      readonly allocator: number;
      readonly round: number;
      readonly bindingId: number;
      readonly message: string;
    }
  | { readonly type: 'gave-up'; readonly allocator: number; readonly round: number; readonly reason: string }
  | { readonly type: 'round-done'; readonly allocator: number; readonly round: number }
  | { readonly type: 'failed'; readonly allocator: number; readonly message: string };
