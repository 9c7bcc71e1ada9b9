import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { DrydockSlotLock } from './src/entities/drydock-slot-lock.entity';
import { slotLockMigrations } from './src/migrations';

/** Where the TypeORM CLI connects when SLOTLOCK_DATABASE_URL is not set. */
export const DEFAULT_DATABASE_URL = 'mysql://root@127.0.0.1:3306/slotlock';

/**
 * The one DataSource the TypeORM CLI uses (`typeorm migration:run -d ormconfig.ts`),
 * configured from `SLOTLOCK_DATABASE_URL`. Never `synchronize`: the migrations own the
 * schema, as they must to stay byte-compatible with Phorge's table.
 */
export default new DataSource({
  type: 'mysql',
  url: process.env.SLOTLOCK_DATABASE_URL ?? DEFAULT_DATABASE_URL,
  entities: [DrydockSlotLock],
  migrations: [...slotLockMigrations],
  synchronize: false,
});
