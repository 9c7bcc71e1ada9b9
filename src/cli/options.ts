import { InvalidArgumentError, Option } from 'commander';
import {
  DATABASE_URL_ENV,
  DEFAULT_SESSION_TTL_MS,
  embeddedDatabaseUrl,
  MAX_SESSION_TTL_MS,
  MIN_SESSION_TTL_MS,
} from '../index';
import { UsageError } from './cli-error';

/**
 * `--url <url>`: the database; see {@link cliDatabaseUrl}. The help shows the embedded
 * SQLite file the command uses without one (it depends on $XDG_DATA_HOME and $HOME).
 */
export function urlOption(what = 'database URL'): Option {
  return new Option(
    '--url <url>',
    `${what} (default: $${DATABASE_URL_ENV}, else the embedded SQLite file ${embeddedDatabaseUrl()})`,
  );
}

/** `--owner <owner>`, required: locks never expire, so who holds them must be said, not guessed. */
export function ownerOption(): Option {
  return new Option(
    '--owner <owner>',
    'who holds the locks: any id of at most 64 UTF-8 bytes, e.g. a PHID',
  ).makeOptionMandatory();
}

/** `--json`: machine-readable output on stdout. */
export function jsonOption(): Option {
  return new Option('--json', 'print JSON (for scripts) instead of a table');
}

/** `--wait <seconds>`: how long the service waits for a held lock (its `waitMs`, SPEC 10). */
export function waitOption(): Option {
  return new Option(
    '--wait <seconds>',
    'when a lock is held, wait up to this many seconds for it (decimals allowed; checked again every 100 ms ' +
      'at most, at once on a release on PostgreSQL; Ctrl-C stops the wait, taking nothing)',
  )
    .default(0)
    .argParser(parseSeconds);
}

/** Parses a non-negative number of seconds (`30`, `2.5`); commander reports anything else as a usage error. */
export function parseSeconds(value: string): number {
  const seconds = Number(value);
  if (value.trim() === '' || !Number.isFinite(seconds) || seconds < 0) {
    throw new InvalidArgumentError('expected a number of seconds, 0 or more (e.g. 30 or 2.5)');
  }
  return seconds;
}

/** `run --ttl`'s default, in seconds: the service's default session TTL. */
export const DEFAULT_TTL_SECONDS = DEFAULT_SESSION_TTL_MS / 1000;

/**
 * Parses `--ttl`: `0` (no session), or a session TTL in seconds that the service takes
 * once in whole milliseconds (`0.5`: 500 ms), from {@link MIN_SESSION_TTL_MS} up.
 */
export function parseTtlSeconds(value: string): number {
  const seconds = Number(value);
  const ttlMs = Math.round(seconds * 1000);
  if (
    value.trim() === '' ||
    !Number.isFinite(seconds) ||
    (seconds !== 0 && (ttlMs < MIN_SESSION_TTL_MS || ttlMs > MAX_SESSION_TTL_MS))
  ) {
    throw new InvalidArgumentError(
      `expected 0 (no session) or a number of seconds from ${MIN_SESSION_TTL_MS / 1000} to ` +
        `${MAX_SESSION_TTL_MS / 1000} (e.g. 30 or 0.5)`,
    );
  }
  return seconds;
}

/** A parser for an integer option between `min` and `max`. */
export function integerBetween(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || number < min || number > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return number;
  };
}

/** Collects a repeatable option's values (`--lock a --lock b`). */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * `--owner`, refused at once when empty (a forgotten `--owner "$VAR"`); the service checks
 * the rest (at most 64 UTF-8 bytes, no lone surrogate) with a TypeError or RangeError.
 */
export function checkOwnerOption(owner: string, optionName = '--owner'): string {
  if (owner === '') throw new UsageError(`${optionName} must not be empty`);
  return owner;
}

/** Lock keys, refused at once when one is empty; the service checks the rest. */
export function checkLockKeys(keys: readonly string[], what = 'lock key'): string[] {
  keys.forEach((key, position) => {
    if (key === '') throw new UsageError(`${what} #${position + 1} must not be empty`);
  });
  return [...keys];
}

/**
 * The service's argument errors name its parameters (`ownerPHID`, `lockKeys[0]`);
 * the command line's user typed `--owner` and keys.
 */
export function inCommandLineTerms(message: string): string {
  return message
    .replace(/^ownerPHID\b/, '--owner')
    .replace(/^lockKeys\[(\d+)\]/, (_match, index: string) => `lock key #${Number(index) + 1}`);
}
