import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectFor } from '../dialects';
import { SESSION_TABLE_NAME } from '../dialects/session-sql';

/**
 * Creates `drydock_slotlock_session` in the DataSource's database (SPEC 9), the sessions' table:
 * one row per live session, `(ownerPHID, ttlMs, expiresAt)`, `expiresAt` in milliseconds
 * by the database server's clock. Phorge's `drydock_slotlock` is not touched, so it stays
 * byte-compatible; Phorge ignores this table.
 */
export class CreateDrydockSlotLockSession1796083200000 implements MigrationInterface {
  name = 'CreateDrydockSlotLockSession1796083200000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).sessions.createSessionTable(queryRunner, SESSION_TABLE_NAME);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).sessions.dropSessionTable(queryRunner, SESSION_TABLE_NAME);
  }
}
