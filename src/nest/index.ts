/**
 * `drydock-slotlock/nest`: the NestJS module. Needs @nestjs/common, @nestjs/core,
 * @nestjs/typeorm and rxjs; the package's root entry never loads them.
 */
export {
  SlotLockModule,
  type SlotLockModuleAsyncOptions,
  type SlotLockModuleOptions,
  type SlotLockOptionsFactory,
} from './slot-lock.module';
export { getSlotLockOptionsToken, getSlotLockServiceToken, InjectSlotLockService } from './slot-lock.tokens';
export { SlotLockService } from '../services/slot-lock.service';
export type { SlotLockServiceOptions } from '../services/slot-lock.options';
