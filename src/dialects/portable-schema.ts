import { EntitySchema, Table, type ColumnType, type QueryRunner } from 'typeorm';
import { DrydockSlotLock } from '../entities/drydock-slot-lock.entity';

/**
 * Column types of the lock table on an engine other than MySQL. Phorge's exact DDL
 * only exists on MySQL; elsewhere the same columns, names and indexes are described
 * once here and turned both into the entity mapping and the migration's table, so the
 * two cannot drift apart (TypeORM's schema log stays empty).
 */
export interface PortableColumnTypes {
  readonly id: ColumnType;
  /** Holds an owner of at most 64 UTF-8 bytes (the service checks the bytes). */
  readonly ownerPHID: { readonly type: ColumnType; readonly length: number };
  /** Compared byte-exact: the index alphabet has both cases. */
  readonly lockIndex: { readonly type: ColumnType; readonly length: number; readonly collation?: string };
  readonly lockKey: ColumnType;
}

/** The entity mapping of {@link DrydockSlotLock} for an engine, as a TypeORM EntitySchema. */
export function portableEntitySchema(table: string, types: PortableColumnTypes): EntitySchema<DrydockSlotLock> {
  return new EntitySchema<DrydockSlotLock>({
    name: 'DrydockSlotLock',
    target: DrydockSlotLock,
    tableName: table,
    columns: {
      id: { type: types.id, primary: true, generated: 'increment' },
      ownerPHID: { type: types.ownerPHID.type, length: types.ownerPHID.length },
      lockIndex: {
        type: types.lockIndex.type,
        length: types.lockIndex.length,
        ...(types.lockIndex.collation === undefined ? {} : { collation: types.lockIndex.collation }),
      },
      lockKey: { type: types.lockKey },
    },
    indices: [
      { name: 'key_lock', columns: ['lockIndex'], unique: true },
      { name: 'key_owner', columns: ['ownerPHID'] },
    ],
  });
}

/** The same table for `QueryRunner.createTable` in the migration. */
export function portableTable(table: string, types: PortableColumnTypes): Table {
  return new Table({
    name: table,
    columns: [
      {
        name: 'id',
        type: String(types.id),
        isPrimary: true,
        isGenerated: true,
        generationStrategy: 'increment',
      },
      { name: 'ownerPHID', type: String(types.ownerPHID.type), length: String(types.ownerPHID.length) },
      {
        name: 'lockIndex',
        type: String(types.lockIndex.type),
        length: String(types.lockIndex.length),
        ...(types.lockIndex.collation === undefined ? {} : { collation: types.lockIndex.collation }),
      },
      { name: 'lockKey', type: String(types.lockKey) },
    ],
    indices: [
      { name: 'key_lock', columnNames: ['lockIndex'], isUnique: true },
      { name: 'key_owner', columnNames: ['ownerPHID'] },
    ],
  });
}

/** The migration's half of a dialect on such an engine: create and drop the described table. */
export function portableTableMigration(types: PortableColumnTypes): {
  createTable(runner: QueryRunner, table: string): Promise<void>;
  dropTable(runner: QueryRunner, table: string): Promise<void>;
} {
  return {
    async createTable(runner, table) {
      await runner.createTable(portableTable(table, types));
    },
    async dropTable(runner, table) {
      await runner.dropTable(table);
    },
  };
}
