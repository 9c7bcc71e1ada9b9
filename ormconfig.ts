import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl, resolveDatabaseUrl } from './src/config/database-url';

/**
 * The one DataSource the TypeORM CLI uses (`typeorm migration:run -d ormconfig.ts`),
 * configured from `SLOTLOCK_DATABASE_URL` (default `mysql://root@127.0.0.1:3306/slotlock`).
 * Never `synchronize`: the migrations own the schema, as they must to stay
 * byte-compatible with Phorge's table.
 */
export default new DataSource(dataSourceOptionsFromUrl(resolveDatabaseUrl()));
