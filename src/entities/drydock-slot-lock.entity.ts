import { Column, Entity, Index, PrimaryGeneratedColumn, type ValueTransformer } from 'typeorm';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';

/**
 * mysql2 hands BINARY and VARBINARY columns back as Buffers; the entity exposes the
 * strings Phorge writes there (a PHID, a 12-letter index). Writes pass strings through,
 * which the driver sends as UTF-8 bytes.
 */
const binaryAsString: ValueTransformer = {
  to: (value: unknown) => value,
  from: (value: unknown) => (Buffer.isBuffer(value) ? value.toString('utf8') : value),
};

/**
 * One held lock: a row of Phorge's `drydock_slotlock` table, column for column.
 *
 * The unique index `key_lock` on `lockIndex` is the lock; `key_owner` lets an owner
 * release everything it holds in one DELETE. There are no timestamps: Phorge's table
 * has none, and a lock lasts until its owner releases it.
 *
 * Register it in your DataSource's `entities` to query it with repositories or to let
 * `schema:log` compare it with the table; {@link SlotLockService} itself does not need it.
 */
@Entity({ name: PHORGE_TABLE_NAME, engine: 'InnoDB' })
@Index('key_lock', ['lockIndex'], { unique: true })
@Index('key_owner', ['ownerPHID'])
export class DrydockSlotLock {
  /** Auto-increment row id (`INT UNSIGNED`). */
  @PrimaryGeneratedColumn({ type: 'int', unsigned: true })
  id!: number;

  /** Who holds the lock: any id of at most 64 UTF-8 bytes, in Phorge a PHID. */
  @Column({ type: 'varbinary', length: 64, transformer: binaryAsString })
  ownerPHID!: string;

  /** `digestForIndex(lockKey)`: 12 case-sensitive ASCII letters. */
  @Column({ type: 'binary', length: 12, transformer: binaryAsString })
  lockIndex!: string;

  /** The lock's name as the owner asked for it, e.g. `workingcopy.lease(PHID-DRYR-…)`. */
  @Column({ type: 'longtext', charset: 'utf8mb4', collation: 'utf8mb4_bin' })
  lockKey!: string;
}
