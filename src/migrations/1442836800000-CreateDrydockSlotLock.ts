import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectFor } from '../dialects';
import { PHORGE_TABLE_NAME } from '../dialects/mysql';

/**
 * Creates `drydock_slotlock`. On MariaDB and MySQL exactly as Phorge's autopatch
 * `20150916.drydock.slotlocks.1.sql` does (its timestamp is that commit's day), so
 * `SHOW CREATE TABLE` is the same on both sides (SPEC 2.2); on PostgreSQL and SQLite
 * with the same columns, names and indexes in the engine's own types.
 *
 * Do not run it against a Phorge `…_drydock` database: the table is already there,
 * and the migration stops with "Table 'drydock_slotlock' already exists".
 */
export class CreateDrydockSlotLock1442836800000 implements MigrationInterface {
  name = 'CreateDrydockSlotLock1442836800000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).createTable(queryRunner, PHORGE_TABLE_NAME);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await dialectFor(queryRunner.connection).dropTable(queryRunner, PHORGE_TABLE_NAME);
  }
}
