export { DrydockSlotLock } from './entities/drydock-slot-lock.entity';
export { slotLockEntity, type SlotLockDatabaseType } from './entities/slot-lock-entity';
export { digestForIndex, LOCK_INDEX_LENGTH } from './hash/digest-for-index';
export { SlotLockException, type SlotLockExceptionDetails, type SlotLockFailure } from './errors/slot-lock.exception';
export {
  SlotLockService,
  type CommitWithLocksOptions,
  type WithLocksContext,
  type WithLocksOptions,
} from './services/slot-lock.service';
export { SlotLockSession } from './sessions/slot-lock-session';
export { type ReapedSessions } from './sessions/sessions';
export { SlotLockSessionLostError } from './errors/slot-lock-session-lost.error';
export { SlotLockSessionError, type SlotLockSessionProblem } from './errors/slot-lock-session.error';
export { DEFAULT_WAIT, type WaitOptions } from './waiting/wait-for-locks';
export { type AcquiredSlot } from './services/slots/take-slot';
export {
  DEFAULT_RETRY,
  DEFAULT_SLOT_LOCK_OPTIONS,
  DEFAULT_SESSION_TTL_MS,
  MIN_SESSION_TTL_MS,
  MAX_SESSION_TTL_MS,
  type OpenSessionOptions,
  type ResolvedSlotLockOptions,
  type RetryOptions,
  type SlotLockCallOptions,
  type SlotLockServiceOptions,
} from './services/slot-lock.options';
export { MAX_OWNER_BYTES, MAX_SLOT_LIMIT } from './services/check-input';
export {
  slotLockMigrations,
  slotLockSessionMigrations,
  CreateDrydockSlotLock1442836800000,
  CreateDrydockSlotLockSession1796083200000,
} from './migrations';
export {
  SLOT_LOCK_CHANNELS,
  type SlotLockAcquiredEvent,
  type SlotLockConflictEvent,
  type SlotLockReleasedEvent,
  type SlotLockRetryEvent,
} from './diagnostics/slot-lock-channels';
export {
  DATABASE_URL_ENV,
  DEFAULT_DATABASE_URL,
  dataSourceOptionsFromUrl,
  embeddedDatabaseUrl,
  sqlitePath,
  redactUrl,
  resolveDatabaseUrl,
  SQLITE_BUSY_TIMEOUT_MS,
} from './config/database-url';
