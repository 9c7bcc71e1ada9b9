import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { DataSource } from 'typeorm';
import {
  dataSourceOptionsFromUrl,
  embeddedDatabaseUrl,
  resolveDatabaseUrl,
  sqlitePath,
} from './src/config/database-url';

/**
 * The one DataSource the TypeORM CLI uses (`typeorm migration:run -d ormconfig.ts`),
 * configured from `SLOTLOCK_DATABASE_URL` with the `slotlock` command's default, the
 * embedded SQLite file (`embeddedDatabaseUrl()`): the command and TypeORM's CLI see the
 * same database whether the variable is set or not.
 * Never `synchronize`: the migrations own the schema, as they must to stay
 * byte-compatible with Phorge's table.
 */
const url = resolveDatabaseUrl(undefined, process.env, embeddedDatabaseUrl());
if (url.startsWith('sqlite:')) mkdirSync(path.dirname(sqlitePath(url)), { recursive: true });

export default new DataSource(dataSourceOptionsFromUrl(url));
