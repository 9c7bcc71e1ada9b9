/**
 * A session's locks can no longer be trusted (SPEC 9): it expired (no heartbeat reached
 * the database within its TTL) or its row was deleted under it (reaped, or closed
 * elsewhere). It is the `reason` of the session's `signal`, and what an acquisition by
 * the lost session rejects with: the holder must stop what the locks guarded.
 *
 * @example
 * ```ts
 * session.signal.addEventListener('abort', () => {
 *   if (session.signal.reason instanceof SlotLockSessionLostError) stopWork();
 * });
 * ```
 */
export class SlotLockSessionLostError extends Error {
  override readonly name = 'SlotLockSessionLostError';

  constructor(
    /** The owner of the lost session. */
    readonly ownerPHID: string,
    why: string,
    options?: { cause?: unknown },
  ) {
    super(
      `drydock-slotlock: session ${JSON.stringify(ownerPHID)} is lost: ${why}; its locks may be held by others now`,
      options,
    );
  }
}
