/** Why a session could not be opened (or sessions reaped). */
export type SlotLockSessionProblem =
  /** A live session of the owner exists: opened by this process and not closed, or by another process. */
  | 'owner-in-use'
  /** The session table does not exist: `slotLockSessionMigrations` (or `slotlock migrate`) has not run. */
  | 'no-session-table';

/**
 * A session could not be opened, or sessions reaped, for a reason the caller can act on
 * (SPEC 9); its `problem` says which. Errors of the database itself pass through as
 * TypeORM's own.
 *
 * @example
 * ```ts
 * try {
 *   await slotLocks.openSession({ ownerPHID: 'PHID-SESS-worker1' });
 * } catch (error) {
 *   if (error instanceof SlotLockSessionError && error.problem === 'owner-in-use') pickAnotherOwner();
 *   else throw error;
 * }
 * ```
 */
export class SlotLockSessionError extends Error {
  override readonly name = 'SlotLockSessionError';

  constructor(
    readonly problem: SlotLockSessionProblem,
    /** The owner of the session asked for, when there was one. */
    readonly ownerPHID: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`drydock-slotlock: ${message}`, options);
  }
}
