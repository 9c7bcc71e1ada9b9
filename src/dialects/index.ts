import type { DataSource } from 'typeorm';
import type { SlotLockDialect } from './dialect';
import { mysqlDialect } from './mysql';
import { postgresDialect } from './postgres';
import { sqliteDialect } from './sqlite';

const DIALECTS: readonly SlotLockDialect[] = [mysqlDialect, postgresDialect, sqliteDialect];

/** TypeORM data source types the package supports. */
export const SUPPORTED_DATA_SOURCE_TYPES: readonly string[] = DIALECTS.flatMap((dialect) => dialect.dataSourceTypes);

/** The dialect for a TypeORM data source type, or a `TypeError` naming the types supported. */
export function dialectForType(type: string): SlotLockDialect {
  const dialect = DIALECTS.find((candidate) => candidate.dataSourceTypes.includes(type));
  if (dialect === undefined) {
    throw new TypeError(
      `dataSource: type "${type}" is not supported by drydock-slotlock (supported: ${SUPPORTED_DATA_SOURCE_TYPES.join(', ')})`,
    );
  }
  return dialect;
}

/** The dialect serving a data source. */
export function dialectFor(dataSource: DataSource): SlotLockDialect {
  return dialectForType(dataSource.options.type);
}
