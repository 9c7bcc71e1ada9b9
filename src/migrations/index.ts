import { CreateDrydockSlotLock1442836800000 } from './1442836800000-CreateDrydockSlotLock';

/**
 * The package's migrations, oldest first: add them to your DataSource's `migrations`.
 *
 * @example
 * ```ts
 * new DataSource({ type: 'mariadb', entities: [DrydockSlotLock], migrations: [...slotLockMigrations] });
 * ```
 */
export const slotLockMigrations = Object.freeze([CreateDrydockSlotLock1442836800000]);

export { CreateDrydockSlotLock1442836800000 };
