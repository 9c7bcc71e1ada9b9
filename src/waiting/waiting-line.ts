import { addAbortListener } from 'node:events';

/** The longest delay `setTimeout` keeps (2^31 - 1 ms, about 24.8 days). */
const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The callers of this process waiting for a slot of one family, first come first served
 * (SPEC 10). Only the first in line tries again: when a slot of the family is released
 * through this process it goes to that caller, and otherwise it asks again after its own
 * growing pause (a release elsewhere). Without the line, every waiter asked again on
 * its own timer and most found every slot held: 32 callers on 4 slots made about three
 * failed tries per acquisition and ran at a third of the rate of 8 callers.
 *
 * A call that waits for anything else waits in a line of its own, of one place: the
 * same pauses, wake-ups and deadline, without anyone before it.
 */
export class WaitingLine {
  readonly #places: Place[] = [];
  /** Releases through this process that no try has answered yet (never more than places in line). */
  #releases = 0;
  /** A nudge is on its way to the first in line (see {@link nudge}). */
  #nudging = false;

  /** True while nobody is in line. */
  get isEmpty(): boolean {
    return this.#places.length === 0;
  }

  /**
   * A place at the end of the line, for a caller whose try found every slot held, or who
   * comes while others wait: then it waits for its turn ({@link Place.turn}) before its
   * first try, so that a caller who just gave a slot back and asks again does not take it
   * from those who were waiting.
   */
  join(): Place {
    const place = new Place(this);
    this.#places.push(place);
    return place;
  }

  /** `count` slots of the family were released through this process: the first in line tries now. */
  released(count: number): void {
    this.#releases = Math.min(this.#releases + count, this.#places.length);
    this.#places[0]?.wake(true);
  }

  /**
   * Something was released somewhere (PostgreSQL's `NOTIFY`): the first in line tries now,
   * or once more at once if it is trying. Every waiter's subscription calls this for one
   * notification, in one go: they count once, and reach the first in line even when it has
   * not subscribed yet (it came while others waited, and has not tried).
   */
  nudge(): void {
    if (this.#nudging) return;
    this.#nudging = true;
    queueMicrotask(() => {
      this.#nudging = false;
      this.#places[0]?.wake(false);
    });
  }

  /** @internal */
  isFirst(place: Place): boolean {
    return this.#places[0] === place;
  }

  /** @internal Takes one release for a try of the first in line; false when there is none. */
  takeRelease(): boolean {
    if (this.#releases === 0) return false;
    this.#releases -= 1;
    return true;
  }

  /** @internal */
  leave(place: Place): void {
    const at = this.#places.indexOf(place);
    if (at === -1) return;
    this.#places.splice(at, 1);
    this.#releases = Math.min(this.#releases, this.#places.length);
    if (at === 0) this.#places[0]?.promoted();
  }
}

/** One caller's place in a {@link WaitingLine}. */
export class Place {
  /** Resolves the turn being waited for, if any. */
  #resume: (() => void) | undefined;
  /** The pause of the first in line, while it waits for its turn. */
  #pauseMs = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Something was released while this place was trying: its next turn comes at once. */
  #wokenWhileTrying = false;
  /** Its turn came with a release that no try has used yet: passed on if it leaves. */
  #releaseInHand = false;

  constructor(readonly line: WaitingLine) {}

  /** True when this place is first in line. */
  get isFirst(): boolean {
    return this.line.isFirst(this);
  }

  /**
   * Resolves when this place may try again: once it is first in line and a slot was
   * released through this process, or something woke it, or `pauseMs` passed since it
   * became first; or at `deadline` (`Date.now()`), first or not. Rejects with the
   * signal's reason when it aborts.
   */
  turn(pauseMs: number, deadline: number, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.isFirst && (this.#wokenWhileTrying || this.#takeRelease())) {
      this.#wokenWhileTrying = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const finish = (): void => {
        clearTimeout(this.#timer);
        clearTimeout(atDeadline);
        listening?.[Symbol.dispose]();
        this.#resume = undefined;
        this.#timer = undefined;
      };
      const atDeadline = setTimeout(
        () => {
          finish();
          resolve();
        },
        // Node fires a longer timeout at once (waitMs: Infinity): wake then, and wait again.
        Math.min(Math.max(0, deadline - Date.now()), LONGEST_TIMEOUT_MS),
      );
      // addAbortListener: many waits on one long-lived signal are not a listener leak to warn of.
      const listening =
        signal === undefined
          ? undefined
          : addAbortListener(signal, () => {
              finish();
              reject(signal.reason);
            });
      this.#resume = () => {
        finish();
        resolve();
      };
      this.#pauseMs = pauseMs;
      if (this.isFirst) this.#startPause();
    });
  }

  /** A try starts: it answers the release this place's turn came with, if any. */
  trying(): void {
    this.#releaseInHand = false;
  }

  /** @internal Woken as first in line: by a release through this process (`counted`), or a nudge. */
  wake(counted: boolean): void {
    if (this.#resume === undefined) {
      // Trying now: a counted release stays in the line for its next turn; a nudge is remembered.
      if (!counted) this.#wokenWhileTrying = true;
      return;
    }
    if (counted && !this.#takeRelease()) return;
    this.#resume();
  }

  /** @internal Became first in line: try at once if a release waits, else start the pause. */
  promoted(): void {
    if (this.#resume === undefined) return;
    if (this.#takeRelease()) this.#resume();
    else this.#startPause();
  }

  /**
   * Leaves the line (after taking a slot, giving up, or an abort); the next place moves
   * up, and gets the release this place's turn came with if no try of it used it.
   */
  leave(): void {
    const resume = this.#resume;
    this.line.leave(this);
    resume?.(); // ends a turn still awaited, for callers that leave without it
    if (this.#releaseInHand) {
      this.#releaseInHand = false;
      this.line.released(1);
    }
  }

  #takeRelease(): boolean {
    if (!this.line.takeRelease()) return false;
    this.#releaseInHand = true;
    return true;
  }

  #startPause(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#resume?.(), this.#pauseMs);
  }
}

/** Owners remembered per lock table; beyond this the longest idle are forgotten (their releases then wake nobody early). */
const REMEMBERED_OWNERS = 10_000;

/**
 * The waiting lines of one lock table in this process, one per slot family (its name and
 * limit: callers asking for one name with two limits wait apart), and which owners took
 * slots of which family here, so that `releaseLocks(owner)` knows whose line to move.
 */
export class WaitingLines {
  readonly #lines = new Map<string, { readonly line: WaitingLine; calls: number }>();
  readonly #slotsOf = new Map<string, Map<string, number>>();

  /** The line of a family (by its name and limit) for one waiting call; {@link done} when the call ends. */
  use(familyKey: string): WaitingLine {
    let used = this.#lines.get(familyKey);
    if (used === undefined) {
      used = { line: new WaitingLine(), calls: 0 };
      this.#lines.set(familyKey, used);
    }
    used.calls += 1;
    return used.line;
  }

  /** A waiting call of the family ended: its line is forgotten once no call uses it. */
  done(familyKey: string): void {
    const used = this.#lines.get(familyKey);
    if (used !== undefined && --used.calls === 0) this.#lines.delete(familyKey);
  }

  /** `owner` took a slot of the family. */
  took(owner: string, familyKey: string): void {
    const slots = this.#slotsOf.get(owner) ?? new Map<string, number>();
    // Moved to the end: the owners forgotten first are those that took nothing for longest.
    this.#slotsOf.delete(owner);
    if (this.#slotsOf.size >= REMEMBERED_OWNERS) this.#slotsOf.delete(this.#slotsOf.keys().next().value!);
    this.#slotsOf.set(owner, slots);
    slots.set(familyKey, (slots.get(familyKey) ?? 0) + 1);
  }

  /**
   * `owner`'s locks were released (`committed`: by a statement that has committed), so
   * its slots are free: each family's first in line tries now. A release in the caller's
   * transaction only forgets them: it frees nothing until that transaction commits, which
   * the waiters' own pauses will see.
   */
  releasedBy(owner: string, committed: boolean): void {
    const slots = this.#slotsOf.get(owner);
    if (slots === undefined) return;
    this.#slotsOf.delete(owner);
    if (!committed) return;
    for (const [familyKey, count] of slots) this.#lines.get(familyKey)?.line.released(count);
  }
}

const linesOf = new WeakMap<object, Map<string, WaitingLines>>();

/**
 * The waiting lines of the lock table `table` on `dataSource`, shared by every service
 * on them in this process (services on other tables wait apart).
 */
export function waitingLinesOf(dataSource: object, table: string): WaitingLines {
  // By the name as the service was given it: services that spell one table differently
  // (with and without its database or schema) wait apart, each finding the other's releases by polling.
  let tables = linesOf.get(dataSource);
  if (tables === undefined) {
    tables = new Map();
    linesOf.set(dataSource, tables);
  }
  let lines = tables.get(table);
  if (lines === undefined) {
    lines = new WaitingLines();
    tables.set(table, lines);
  }
  return lines;
}
