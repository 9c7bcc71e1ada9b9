import type { DataSource } from 'typeorm';
import { DEFAULT_SLOT_LOCK_OPTIONS } from '../index';

/** Deletes every lock in the table (the demo, between its rounds). */
export async function clearLocks(dataSource: DataSource): Promise<void> {
  await dataSource.createQueryBuilder().delete().from(DEFAULT_SLOT_LOCK_OPTIONS.tableName).execute();
}
