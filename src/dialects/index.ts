import type { DataSource } from 'typeorm';
import type { SlotLockDialect } from './dialect';
import { mysqlDialect } from './mysql';

const DIALECTS: readonly SlotLockDialect[] = [mysqlDialect];

/** The dialect serving a data source, or a `TypeError` naming the engines supported. */
export function dialectFor(dataSource: DataSource): SlotLockDialect {
  const type = dataSource.options.type;
  const dialect = DIALECTS.find((candidate) => candidate.dataSourceTypes.includes(type));
  if (dialect === undefined) {
    const supported = DIALECTS.flatMap((candidate) => candidate.dataSourceTypes).join(', ');
    throw new TypeError(`dataSource: type "${type}" is not supported by drydock-slotlock (supported: ${supported})`);
  }
  return dialect;
}
