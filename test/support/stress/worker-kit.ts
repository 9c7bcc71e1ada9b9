/**
 * Small pieces the stress workers share: describing an error for the report, counting
 * the service's contention retries, and catching any error or rejection that nobody
 * handled (the process must have none, at any point).
 */
import { subscribe } from 'node:diagnostics_channel';
import { QueryFailedError } from 'typeorm';
import { SLOT_LOCK_CHANNELS, type SlotLockRetryEvent } from '../../../src';

/** An error, reduced to what a report needs. */
export interface ErrorSample {
  /** Which call threw it. */
  readonly op: string;
  readonly name: string;
  readonly errno?: number;
  readonly code?: string;
  readonly message: string;
  readonly stack?: string;
}

/** Keeps the first few samples of a kind. */
const MAX_SAMPLES = 5;

export function describeError(op: string, error: unknown): ErrorSample {
  const driver = (error instanceof QueryFailedError ? error.driverError : error) as
    { errno?: unknown; code?: unknown } | undefined;
  const base = error instanceof Error ? error : new Error(String(error));
  return {
    op,
    name: base.name,
    ...(typeof driver?.errno === 'number' ? { errno: driver.errno } : {}),
    ...(typeof driver?.code === 'string' ? { code: driver.code } : {}),
    message: base.message.slice(0, 400),
    ...(base.stack !== undefined ? { stack: base.stack.split('\n').slice(0, 10).join('\n') } : {}),
  };
}

/** Pushes `item` onto `list` unless it already holds {@link MAX_SAMPLES}. */
export function sample<T>(list: T[], item: T): void {
  if (list.length < MAX_SAMPLES) list.push(item);
}

/** The error number a driver error carries (`errno` of mysql2), if any. */
export function errnoOf(error: unknown): number | undefined {
  const driver = (error instanceof QueryFailedError ? error.driverError : error) as { errno?: unknown } | undefined;
  return typeof driver?.errno === 'number' ? driver.errno : undefined;
}

/**
 * Counts the contention retries the service reports on its diagnostics channel, by
 * operation and driver code: `{ "acquireLocks:1213": 12, "commitWithLocks:1213": 3 }`.
 */
export function countRetries(): Record<string, number> {
  const counts: Record<string, number> = {};
  subscribe(SLOT_LOCK_CHANNELS.retry, (message) => {
    const event = message as SlotLockRetryEvent;
    const key = `${event.operation}:${String(event.code)}`;
    counts[key] = (counts[key] ?? 0) + 1;
  });
  return counts;
}

/**
 * Records every uncaught exception and unhandled rejection of this process instead of
 * dying of it, so that the worker can report them (and the test fail on them).
 */
export function recordUnhandled(): ErrorSample[] {
  const seen: ErrorSample[] = [];
  process.on('uncaughtException', (error) => {
    seen.push(describeError('uncaughtException', error));
  });
  process.on('unhandledRejection', (reason) => {
    seen.push(describeError('unhandledRejection', reason));
  });
  return seen;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A whole number from 0 to `max`, both included. */
export function randomInt(max: number): number {
  return Math.floor(Math.random() * (max + 1));
}

/** `count` distinct items of `pool`, in random order. */
export function randomSample<T>(pool: readonly T[], count: number): T[] {
  const items = [...pool];
  for (let i = 0; i < count && i < items.length; i += 1) {
    const j = i + Math.floor(Math.random() * (items.length - i));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items.slice(0, count);
}
