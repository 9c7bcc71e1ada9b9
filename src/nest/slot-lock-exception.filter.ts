import { Catch, HttpStatus, Optional, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { SlotLockException } from '../errors/slot-lock.exception';

/** Options of {@link SlotLockExceptionFilter}. */
export interface SlotLockExceptionFilterOptions {
  /**
   * The `Retry-After` header, in seconds, of the 503 answered when contention (deadlocks,
   * lock-wait timeouts) outlasted the service's retries.
   * Default: `1`.
   */
  readonly retryAfterSeconds?: number;
}

/** The JSON body {@link SlotLockExceptionFilter} answers with. */
export interface SlotLockErrorBody {
  /** 409 when a lock is held, 503 under contention. */
  readonly statusCode: number;
  /** The exception's message, e.g. `Unable to acquire slot locks: "host(7)" (owned by "PHID-DRYL-a").` */
  readonly message: string;
  /** `{ [lockKey]: ownerPHID }` of the held locks (may be empty, see `SlotLockException.getLockMap`). */
  readonly lockMap: Record<string, string>;
}

/** The part of an HTTP response object the filter uses: Express's `Response` and Fastify's `FastifyReply` both have it. */
interface HttpReply {
  status(code: number): unknown;
  header(name: string, value: string): unknown;
  send(body: unknown): unknown;
}

/**
 * Turns a {@link SlotLockException} that reaches Nest into an HTTP answer, so that
 * controllers need no try/catch around lock calls:
 * - a lock is held (`failure: 'held'`): **409 Conflict**;
 * - contention outlasted the retries (`failure: 'contention'`): **503 Service Unavailable**
 *   with `Retry-After` (the request may well succeed if sent again).
 *
 * The body is `{ statusCode, message, lockMap }` ({@link SlotLockErrorBody}). Only HTTP
 * requests are answered; in other contexts (microservices, WebSockets) the exception is
 * thrown on unchanged. Tested on @nestjs/platform-express.
 *
 * @example
 * ```ts
 * // Everywhere:
 * app.useGlobalFilters(new SlotLockExceptionFilter());
 * // Or on one controller (or one handler):
 * @UseFilters(SlotLockExceptionFilter)
 * @Controller('leases')
 * export class LeaseController {}
 * ```
 */
@Catch(SlotLockException)
export class SlotLockExceptionFilter implements ExceptionFilter<SlotLockException> {
  readonly #retryAfterSeconds: string;

  /** @param options - see {@link SlotLockExceptionFilterOptions}; every field has a default. */
  constructor(@Optional() options: SlotLockExceptionFilterOptions = {}) {
    const retryAfterSeconds = options.retryAfterSeconds ?? 1;
    if (!Number.isSafeInteger(retryAfterSeconds) || retryAfterSeconds < 0) {
      throw new RangeError(
        `SlotLockExceptionFilter: options.retryAfterSeconds must be a whole number of seconds, 0 or more, got ${String(retryAfterSeconds)}`,
      );
    }
    this.#retryAfterSeconds = String(retryAfterSeconds);
  }

  /** Answers the HTTP request that `exception` ended. */
  catch(exception: SlotLockException, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const reply = host.switchToHttp().getResponse<HttpReply>();
    const contention = exception.failure === 'contention';
    const body: SlotLockErrorBody = {
      statusCode: contention ? HttpStatus.SERVICE_UNAVAILABLE : HttpStatus.CONFLICT,
      message: exception.message,
      lockMap: exception.getLockMap(),
    };
    reply.status(body.statusCode);
    if (contention) reply.header('Retry-After', this.#retryAfterSeconds);
    reply.send(body);
  }
}
