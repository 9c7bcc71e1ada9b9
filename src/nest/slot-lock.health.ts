import { Injectable } from '@nestjs/common';
import { SlotLockService } from '../services/slot-lock.service';

/**
 * What {@link SlotLockHealthIndicator.isHealthy} resolves to: @nestjs/terminus's
 * `HealthIndicatorResult`, `{ [key]: { status, ...details } }`, described here so that
 * the types of `drydock-slotlock/nest` do not need @nestjs/terminus installed.
 */
export type SlotLockHealthResult<Key extends string = string> = Record<
  Key,
  { readonly status: 'up' | 'down'; readonly table: string; readonly message?: string }
>;

/** Options of {@link SlotLockHealthIndicator.isHealthy}. */
export interface SlotLockHealthCheckOptions {
  /**
   * How long the check waits for the database before it reports the lock table down.
   * Default: `1000` (as @nestjs/terminus's own database indicators).
   */
  readonly timeoutMs?: number;
}

/** The key no one locks: the check reads the table by lock index, as every acquisition does, and expects nothing. */
const PROBE_KEY = 'drydock-slotlock.health-check';

/** The slice of @nestjs/terminus that tells its majors apart. */
interface Terminus {
  /** Exported from 11 on, whose health checks read a returned `down` status as a failure. */
  readonly HealthIndicatorService?: unknown;
  /** What 10 needs thrown for a failure (deprecated in 11, gone in 12). */
  readonly HealthCheckError?: new (message: string, causes: unknown) => Error;
}

/**
 * A health indicator for @nestjs/terminus (10, 11 or 12): the lock table is **up** when
 * the service can read it the way it does on every acquisition, i.e. the database
 * answers and the table exists with its columns (migrated). Anything else, or no answer
 * within `timeoutMs`, is **down**, with the reason in `message`.
 *
 * `SlotLockModule` provides one per data source (token
 * {@link getSlotLockHealthIndicatorToken}); @nestjs/terminus itself stays optional: only
 * a failed check loads it, to report the failure the way the installed major expects.
 *
 * @example
 * ```ts
 * @Controller('health')
 * export class HealthController {
 *   constructor(
 *     private readonly health: HealthCheckService,
 *     private readonly slotLocks: SlotLockHealthIndicator,
 *   ) {}
 *
 *   @Get()
 *   @HealthCheck()
 *   check() {
 *     return this.health.check([() => this.slotLocks.isHealthy('slotlock')]);
 *   } // 200 { status: 'ok', info: { slotlock: { status: 'up', table: 'drydock_slotlock' } }, ... }, or 503
 * }
 * ```
 */
@Injectable()
export class SlotLockHealthIndicator {
  /** @param slotLocks - the service whose lock table is checked. */
  constructor(private readonly slotLocks: SlotLockService) {}

  /**
   * Checks the lock table.
   *
   * @param key - the name of the check in terminus's answer. Default: `'slotlock'`.
   * @param options - see {@link SlotLockHealthCheckOptions}.
   * @returns `{ [key]: { status: 'up', table } }`; when the table is down, a rejection with
   *   terminus's `HealthCheckError` on @nestjs/terminus 10, `{ [key]: { status: 'down', table, message } }` on 11 and 12.
   */
  async isHealthy<Key extends string = 'slotlock'>(
    key: Key = 'slotlock' as Key,
    options: SlotLockHealthCheckOptions = {},
  ): Promise<SlotLockHealthResult<Key>> {
    const timeoutMs = options.timeoutMs ?? 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(
        `SlotLockHealthIndicator: options.timeoutMs must be a positive number, got ${String(timeoutMs)}`,
      );
    }
    const table = this.slotLocks.options.tableName;
    const problem = await withTimeout(this.slotLocks.loadHeldLocks([PROBE_KEY]), timeoutMs).then(
      () => undefined,
      (error: unknown) => describe(error),
    );
    if (problem === undefined) return { [key]: { status: 'up', table } } as SlotLockHealthResult<Key>;
    const result = { [key]: { status: 'down', table, message: problem } } as SlotLockHealthResult<Key>;
    const terminus = loadTerminus();
    if (terminus.HealthIndicatorService === undefined && terminus.HealthCheckError !== undefined) {
      throw new terminus.HealthCheckError(`${key} is down: ${problem}`, result);
    }
    return result;
  }
}

/** @nestjs/terminus, loaded when first needed (it is an optional peer). */
function loadTerminus(): Terminus {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional peer, loaded only on a failed check
  return require('@nestjs/terminus') as Terminus;
}

/** The first line of an error's message (driver messages can run over several), and what to do about a missing table. */
function describe(error: unknown): string {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
  // MariaDB/MySQL "Table '…' doesn't exist", PostgreSQL 'relation "…" does not exist', SQLite "no such table".
  return /doesn't exist|does not exist|no such table/i.test(message)
    ? `${message} (run the migrations: slotLockMigrations in your DataSource, or \`slotlock migrate\`)`
    : message;
}

/** `promise`, or a rejection once `ms` have passed. */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the database within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
