import { CreateDrydockSlotLock1442836800000 } from './1442836800000-CreateDrydockSlotLock';
import { CreateDrydockSlotLockSession1796083200000 } from './1796083200000-CreateDrydockSlotLockSession';

/**
 * The lock table's migrations, oldest first: add them to your DataSource's `migrations`.
 *
 * @example
 * ```ts
 * new DataSource({ type: 'mariadb', entities: [DrydockSlotLock], migrations: [...slotLockMigrations] });
 * ```
 */
export const slotLockMigrations = Object.freeze([CreateDrydockSlotLock1442836800000]);

/**
 * The session table's migrations (SPEC 9), apart from the lock table's so that a Phorge
 * database, whose lock table exists already, can take them alone. Needed by
 * `openSession`, `withLocks(…, { ttlMs })` and `slotlock run`; nothing to add to `entities`.
 *
 * @example
 * ```ts
 * new DataSource({ type: 'mariadb', migrations: [...slotLockMigrations, ...slotLockSessionMigrations] });
 * ```
 */
export const slotLockSessionMigrations = Object.freeze([CreateDrydockSlotLockSession1796083200000]);

export { CreateDrydockSlotLock1442836800000, CreateDrydockSlotLockSession1796083200000 };
