import { digestForIndex } from '../../hash/digest-for-index';
import { SlotLockException } from '../../errors/slot-lock.exception';
import type { RequestedLock } from '../check-input';

/**
 * How many slots one attempt offers the server: the first free one among them is taken.
 * With 10 % of a family free, 32 random candidates all held happens once in 29 calls
 * (0.9^32), and the next batch is one more round trip; the cost of an attempt does not
 * grow with the family's limit.
 */
export const CANDIDATES_PER_ATTEMPT = 32;

/**
 * Statements of one first-free try before giving up on its batch, when each saw a free
 * candidate but lost it to a concurrent insert (PostgreSQL; SQLite has one writer).
 */
const FIRST_FREE_RACES = 3;

/** Random batches tried before the server is asked for a free slot (a scan). */
const SAMPLED_BATCHES = 3;

/**
 * Tries that saw a free slot and lost it to another caller before the call gives up
 * with `failure: 'contention'` (each loss is a slot someone else took, so a caller loses
 * only while others are being served).
 */
export const LOST_RACES = 8;

/** The slot taken by `SlotLockService.acquireSlot`. */
export interface AcquiredSlot {
  /** The slot's number, from 0 to `limit - 1`. */
  readonly slot: number;
  /** The lock taken: `${name}.slot(${slot})`. */
  readonly lockKey: string;
  /**
   * Statements that tried to take a slot, this one's included: 1 when the first
   * try took it; more when every candidate of a try was held, or a free one was taken
   * by someone else first. With `waitMs`, those of every try while waiting count too.
   */
  readonly attempts: number;
}

/** A limited family of locks: `${name}.slot(0)` … `${name}.slot(limit - 1)`. */
export class SlotFamily {
  /** What every key of the family starts with. */
  readonly prefix: string;
  /** Tells families apart in this process's waiting lines: the limit and the name. */
  readonly id: string;

  constructor(
    readonly name: string,
    readonly limit: number,
  ) {
    this.prefix = `${name}.slot(`;
    this.id = `${limit} ${name}`;
  }

  keyOf(slot: number): string {
    return `${this.prefix}${slot})`;
  }

  lockOf(slot: number): RequestedLock {
    const lockKey = this.keyOf(slot);
    return { lockKey, lockIndex: digestForIndex(lockKey) };
  }

  slotOf(lockKey: string): number {
    return Number(lockKey.slice(this.prefix.length, -1));
  }

  /**
   * Up to `count` distinct slots in random order, so that callers spread over the
   * family: every slot, shuffled, when the family is that small; otherwise a random
   * sample (Floyd's algorithm: memory for the sample only, whatever the limit).
   */
  candidates(count: number = CANDIDATES_PER_ATTEMPT, random: () => number = Math.random): number[] {
    if (this.limit <= count)
      return shuffle(
        Array.from({ length: this.limit }, (_, slot) => slot),
        random,
      );
    const chosen = new Set<number>();
    for (let top = this.limit - count; top < this.limit; top += 1) {
      const pick = Math.floor(random() * (top + 1));
      chosen.add(chosen.has(pick) ? top : pick);
    }
    return shuffle([...chosen], random);
  }
}

/** What one try of a batch of candidates came to. */
export interface SlotTry {
  /** The candidate taken, if any. */
  readonly taken?: RequestedLock;
  /** Insert statements sent for this try. */
  readonly statements: number;
  /** Holders of the candidates, when the try read them anyway and lost no race (MySQL reads before it inserts). */
  readonly holders?: Record<string, string>;
  /** True when a candidate was free but another caller took it first: not every candidate was held. */
  readonly lost?: boolean;
}

/**
 * How one way of owning a transaction takes slots (the service's own statements, or
 * the caller's transaction): `acquireSlot`'s search only decides what to try next.
 */
export interface SlotTries {
  /** Takes one of `candidates` nobody holds (the first, where the engine keeps their order); throws on contention it cannot get past. */
  takeFirstFree(candidates: readonly RequestedLock[]): Promise<SlotTry>;
  /** The first slot nobody holds at or after `start`, wrapping round (a scan on the server); undefined when every slot is held. */
  freeSlotFrom(start: number): Promise<number | undefined>;
  /** Who holds `locks`, for the rejection's lock map. */
  holders(locks: readonly RequestedLock[]): Promise<Record<string, string>>;
}

/**
 * Takes one free slot of `family` (SPEC 4.7): a few batches of random candidates, each
 * one statement where the engine allows; when they were all held, the first free slot
 * the server finds after a random start. `failure: 'held'` only when every slot was
 * seen held (the whole family in one batch, or the server's scan finding none), with
 * the holders of the last batch tried as the lock map (at most
 * {@link CANDIDATES_PER_ATTEMPT}: a family can have a million slots); `'contention'`
 * after {@link LOST_RACES} free slots were taken by others first.
 */
export async function takeSlot(
  family: SlotFamily,
  tries: SlotTries,
  random: () => number = Math.random,
): Promise<AcquiredSlot> {
  let attempts = 0;
  let lostRaces = 0;
  let sampledBatches = 0;
  let lastTried: RequestedLock[] = [];
  let knownHolders: Record<string, string> | undefined;
  const wholeFamilyPerBatch = family.limit <= CANDIDATES_PER_ATTEMPT;
  const rejection = async (failure: 'held' | 'contention'): Promise<SlotLockException> =>
    new SlotLockException({
      failure,
      lockMap: knownHolders ?? (await tries.holders(lastTried)),
      attempts: Math.max(attempts, 1),
    });

  for (;;) {
    let result: SlotTry;
    if (wholeFamilyPerBatch || sampledBatches < SAMPLED_BATCHES) {
      lastTried = family.candidates(CANDIDATES_PER_ATTEMPT, random).map((slot) => family.lockOf(slot));
      result = await tries.takeFirstFree(lastTried);
      // The lock map is that of the last batch: read with it, or again later if it lost a race.
      knownHolders = result.lost === true ? undefined : result.holders;
    } else {
      const slot = await tries.freeSlotFrom(Math.floor(random() * family.limit));
      if (slot === undefined) throw await rejection('held');
      result = await tries.takeFirstFree([family.lockOf(slot)]);
    }
    attempts += result.statements;
    if (result.taken !== undefined) {
      return { slot: family.slotOf(result.taken.lockKey), lockKey: result.taken.lockKey, attempts };
    }
    if (result.lost === true || sampledBatches >= SAMPLED_BATCHES) {
      // A free slot went to someone else: try again, never report the family as held.
      lostRaces += 1;
      if (lostRaces >= LOST_RACES) throw await rejection('contention');
    } else if (wholeFamilyPerBatch) {
      throw await rejection('held'); // every slot of the family was in the batch, and held
    } else {
      sampledBatches += 1;
    }
  }
}

/**
 * A try with the dialect's first-free statement (`send` runs it as the way of owning
 * the transaction runs statements): sent again while it saw a free candidate but lost
 * it to a concurrent insert, at most {@link FIRST_FREE_RACES} times.
 */
export async function tryFirstFreeStatement(
  candidates: readonly RequestedLock[],
  send: () => Promise<unknown>,
): Promise<SlotTry> {
  for (let statements = 1; ; statements += 1) {
    const row = firstRowOf(await send());
    const taken = takenCandidate(candidates, row);
    if (taken !== undefined) return { taken, statements };
    // Nothing free, or a free one lost to a concurrent insert too often: the batch is done.
    const lost = Number(row?.free) > 0;
    if (!lost || statements >= FIRST_FREE_RACES) return { statements, lost };
  }
}

/** The row a first-free or free-slot statement answered with. */
export interface SlotAnswer {
  readonly taken?: unknown;
  readonly free?: unknown;
}

export function firstRowOf(rows: unknown): SlotAnswer | undefined {
  return Array.isArray(rows) ? (rows[0] as SlotAnswer | undefined) : undefined;
}

/** The candidate whose key a first-free statement returned as taken (as text, or as bytes on MySQL). */
function takenCandidate(candidates: readonly RequestedLock[], row: SlotAnswer | undefined): RequestedLock | undefined {
  const taken = row?.taken;
  if (taken === null || taken === undefined) return undefined;
  const key = Buffer.isBuffer(taken) ? taken.toString('utf8') : String(taken);
  return candidates.find((candidate) => candidate.lockKey === key);
}

/** The slot number a free-slot statement answered with, undefined for none. */
export function freeSlotOf(row: SlotAnswer | undefined): number | undefined {
  const free = row?.free;
  return free === null || free === undefined ? undefined : Number(free);
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}
