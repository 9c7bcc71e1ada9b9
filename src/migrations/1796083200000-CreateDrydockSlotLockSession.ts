import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectFor } from '../dialects';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';
import { sessionTableOf } from '../dialects/session-sql';

/**
 * Creates `drydock_slotlock_session`, the sessions' table beside the lock table (SPEC 9):
 * one row per live session, `(ownerPHID, ttlMs, expiresAt)`, `expiresAt` in milliseconds
 * by the database server's clock. Phorge's `drydock_slotlock` is not touched, so it stays
 * byte-compatible; Phorge ignores this table.
 */
export class CreateDrydockSlotLockSession1796083200000 implements MigrationInterface {
  name = 'CreateDrydockSlotLockSession1796083200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).sessions.createSessionTable(
      queryRunner,
      sessionTableOf(PHORGE_TABLE_NAME),
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).sessions.dropSessionTable(queryRunner, sessionTableOf(PHORGE_TABLE_NAME));
  }
}
