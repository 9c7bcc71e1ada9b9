import type { SlotLockException } from '../index';
import { formatTable } from './format-table';

/**
 * Says which requested locks are held and by whom (stderr, or JSON on stdout), for
 * `acquire` and `run` when they give up with exit 75.
 */
export function reportHeld(
  error: SlotLockException,
  owner: string,
  keys: readonly string[],
  json: boolean,
  /** How long the command waited for the locks (`--wait`), in milliseconds; 0 when it did not. */
  waitedMs: number,
): void {
  const lockMap = error.getLockMap();
  const held = Object.entries(lockMap).map(([key, holder]) => ({ key, owner: holder }));
  if (json) {
    const result = { acquired: false, owner, keys, held, failure: error.failure, waitedMs };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const waited = waitedMs > 0 ? ` after waiting ${formatSeconds(waitedMs)}` : '';
  let text: string;
  if (held.length === 0) {
    text =
      error.failure === 'contention'
        ? `gave up under lock contention (deadlocks)${waited}; nothing taken, try again\n`
        : `a requested lock was held, but released before its holder could be read${waited}; nothing taken, try again\n`;
  } else {
    const rows = held.map((lock) => [
      lock.key,
      lock.owner === owner ? `${lock.owner} (you: locks are not re-entrant)` : lock.owner,
    ]);
    const count = held.length === 1 ? '1 lock is' : `${held.length} locks are`;
    text = `${count} held, nothing taken${waited}:\n${formatTable(['key', 'owner'], rows)}`;
  }
  process.stderr.write(`slotlock: ${text}`);
}

/** `1 lock` / `2 locks`. */
export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/** `1.2 s`: a duration for messages, to a tenth of a second. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}
