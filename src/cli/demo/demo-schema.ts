import { Table, type DataSource, type EntityManager } from 'typeorm';

/**
 * The demo's own tables, a much reduced Drydock: a `binding` is a host an Almanac service
 * is bound to (what the seed's blueprint allocates), a `resource` is one allocation of a
 * binding. A binding with two resources is the bug the seed's test plan reproduces.
 * Described through TypeORM's Table API and query builder, so the demo runs on every
 * engine the package supports.
 */
export async function createDemoTables(dataSource: DataSource): Promise<void> {
  const runner = dataSource.createQueryRunner();
  try {
    await runner.createTable(
      new Table({
        name: 'binding',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'name', type: 'varchar', length: '128' },
        ],
      }),
    );
    await runner.createTable(
      new Table({
        name: 'resource',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          { name: 'phid', type: 'varchar', length: '64' },
          { name: 'binding_id', type: 'integer' },
          { name: 'allocator', type: 'integer' },
          { name: 'round', type: 'integer' },
        ],
        indices: [{ name: 'key_binding', columnNames: ['binding_id'] }],
      }),
    );
  } finally {
    await runner.release();
  }
}

/** The lock that says a binding is allocated (Drydock names it `almanac.host.binding(PHID)`). */
export function bindingLockKey(bindingId: number): string {
  return `binding(${bindingId})`;
}

/** The bindings of the demo: hosts of a made-up build farm. */
export function bindingNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `build${String(i + 1).padStart(2, '0')}.farm.internal:22`);
}

/** Adds the bindings, in order (their ids are 1, 2, ...). */
export async function insertBindings(dataSource: DataSource, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await dataSource.createQueryBuilder().insert().into('binding').values({ name }).execute();
  }
}

/** Ids of the bindings with no resource, as Drydock's loadFreeBindings() sees them. */
export async function loadFreeBindings(dataSource: DataSource): Promise<number[]> {
  const rows = await dataSource
    .createQueryBuilder()
    .select('b.id', 'id')
    .from('binding', 'b')
    .leftJoin('resource', 'r', 'r.binding_id = b.id')
    .where('r.id IS NULL')
    .orderBy('b.id')
    .getRawMany<{ id: number | string }>();
  return rows.map((row) => Number(row.id));
}

/** Records one allocation of a binding. */
export async function insertResource(
  manager: EntityManager,
  resource: { phid: string; bindingId: number; allocator: number; round: number },
): Promise<void> {
  await manager
    .createQueryBuilder()
    .insert()
    .into('resource')
    .values({
      phid: resource.phid,
      binding_id: resource.bindingId,
      allocator: resource.allocator,
      round: resource.round,
    })
    .execute();
}

/** Forgets every resource (between the rounds). */
export async function deleteResources(dataSource: DataSource): Promise<void> {
  await dataSource.createQueryBuilder().delete().from('resource').execute();
}

/** How many resources each binding got in `round`. */
export async function resourcesPerBinding(dataSource: DataSource, round: number): Promise<Map<number, number>> {
  const rows = await dataSource
    .createQueryBuilder()
    .select('b.id', 'id')
    .addSelect('COUNT(r.id)', 'n')
    .from('binding', 'b')
    .leftJoin('resource', 'r', 'r.binding_id = b.id AND r.round = :round', { round })
    .groupBy('b.id')
    .orderBy('b.id')
    .getRawMany<{ id: number | string; n: number | string }>();
  return new Map(rows.map((row) => [Number(row.id), Number(row.n)]));
}
