import { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';

/** A row as the driver returns it: binary columns may arrive as Buffers. */
export interface RawSlotLockRow {
  readonly id: unknown;
  readonly ownerPHID: unknown;
  readonly lockIndex: unknown;
  readonly lockKey: unknown;
}

function asString(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
}

/** Turns a raw row into an entity, without needing the entity registered in the DataSource. */
export function toSlotLockEntity(row: RawSlotLockRow): DrydockSlotLock {
  const lock = new DrydockSlotLock();
  lock.id = Number(row.id);
  lock.ownerPHID = asString(row.ownerPHID);
  lock.lockIndex = asString(row.lockIndex);
  lock.lockKey = asString(row.lockKey);
  return lock;
}
