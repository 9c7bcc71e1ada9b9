import type { EntitySchema } from 'typeorm';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';
import { POSTGRES_COLUMN_TYPES } from '../dialects/postgres';
import { portableEntitySchema } from '../dialects/portable-schema';
import { SQLITE_COLUMN_TYPES } from '../dialects/sqlite';
import { DrydockSlotLock } from './drydock-slot-lock.entity';

/** TypeORM data source types with a lock table mapping. */
export type SlotLockDatabaseType = 'mysql' | 'mariadb' | 'postgres' | 'better-sqlite3';

/**
 * What to put in a DataSource's `entities` for the lock table on each engine: the
 * decorated {@link DrydockSlotLock} class on MySQL and MariaDB (Phorge's own column
 * types), an EntitySchema with the same columns and indexes elsewhere. Either way
 * `dataSource.getRepository(DrydockSlotLock)` works.
 *
 * @example
 * ```ts
 * new DataSource({ type: 'postgres', entities: [slotLockEntity('postgres')], migrations: [...slotLockMigrations] });
 * ```
 */
export function slotLockEntity(type: SlotLockDatabaseType): typeof DrydockSlotLock | EntitySchema<DrydockSlotLock> {
  switch (type) {
    case 'mysql':
    case 'mariadb':
      return DrydockSlotLock;
    case 'postgres':
      return (postgresSchema ??= portableEntitySchema(PHORGE_TABLE_NAME, POSTGRES_COLUMN_TYPES));
    case 'better-sqlite3':
      return (sqliteSchema ??= portableEntitySchema(PHORGE_TABLE_NAME, SQLITE_COLUMN_TYPES));
    default:
      throw new TypeError(
        `slotLockEntity: type ${JSON.stringify(type)} is not supported (mysql, mariadb, postgres, better-sqlite3)`,
      );
  }
}

let postgresSchema: EntitySchema<DrydockSlotLock> | undefined;
let sqliteSchema: EntitySchema<DrydockSlotLock> | undefined;
