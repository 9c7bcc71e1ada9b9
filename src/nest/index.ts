/**
 * `drydock-slotlock/nest`: the NestJS module and what a Nest app would otherwise write
 * itself (an exception filter, a health indicator, the events on Nest's `Logger`).
 * Needs @nestjs/common, @nestjs/core, @nestjs/typeorm and rxjs (the first import says
 * which are missing); @nestjs/terminus only for the health indicator. The package's
 * root entry never loads any of them.
 */
import './require-nest-peers';

export {
  SlotLockModule,
  type SlotLockModuleAsyncOptions,
  type SlotLockModuleOptions,
  type SlotLockOptionsFactory,
} from './slot-lock.module';
export {
  getSlotLockHealthIndicatorToken,
  getSlotLockOptionsToken,
  getSlotLockServiceToken,
  InjectSlotLockService,
} from './slot-lock.tokens';
export {
  SlotLockExceptionFilter,
  type SlotLockErrorBody,
  type SlotLockExceptionFilterOptions,
} from './slot-lock-exception.filter';
export {
  SlotLockHealthIndicator,
  type SlotLockHealthCheckOptions,
  type SlotLockHealthResult,
} from './slot-lock.health';
export { SLOT_LOCK_LOGGER_CONTEXT } from './slot-lock.event-logger';
export { SlotLockService } from '../services/slot-lock.service';
export { SlotLockException } from '../errors/slot-lock.exception';
export type { SlotLockServiceOptions } from '../services/slot-lock.options';
