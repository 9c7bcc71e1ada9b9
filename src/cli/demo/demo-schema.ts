import type { DataSource, EntityManager } from 'typeorm';

/**
 * The demo's own tables, a much reduced Drydock: a `binding` is a host an Almanac service
 * is bound to (what the seed's blueprint allocates), a `resource` is one allocation of a
 * binding. A binding with two resources is the bug the seed's test plan reproduces.
 */
export const CREATE_DEMO_TABLES = [
  `CREATE TABLE binding (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128) NOT NULL
  ) ENGINE=InnoDB`,
  `CREATE TABLE resource (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    phid VARBINARY(64) NOT NULL,
    bindingId INT UNSIGNED NOT NULL,
    allocator INT UNSIGNED NOT NULL,
    round INT UNSIGNED NOT NULL,
    KEY key_binding (bindingId)
  ) ENGINE=InnoDB`,
] as const;

/** The lock that says a binding is allocated (Drydock names it `almanac.host.binding(PHID)`). */
export function bindingLockKey(bindingId: number): string {
  return `binding(${bindingId})`;
}

/** The bindings of the demo: hosts of a made-up build farm. */
export function bindingNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `build${String(i + 1).padStart(2, '0')}.farm.internal:22`);
}

/** Ids of the bindings with no resource, as Drydock's loadFreeBindings() sees them. */
export async function loadFreeBindings(dataSource: DataSource): Promise<number[]> {
  const rows = (await dataSource.query(
    'SELECT b.id FROM binding b LEFT JOIN resource r ON r.bindingId = b.id WHERE r.id IS NULL ORDER BY b.id',
  )) as Array<{ id: number | string }>;
  return rows.map((row) => Number(row.id));
}

/** Records one allocation of a binding. */
export async function insertResource(
  manager: EntityManager,
  resource: { phid: string; bindingId: number; allocator: number; round: number },
): Promise<void> {
  await manager.query('INSERT INTO resource (phid, bindingId, allocator, round) VALUES (?, ?, ?, ?)', [
    resource.phid,
    resource.bindingId,
    resource.allocator,
    resource.round,
  ]);
}

/** How many resources each binding got in `round`. */
export async function resourcesPerBinding(dataSource: DataSource, round: number): Promise<Map<number, number>> {
  const rows = (await dataSource.query(
    'SELECT b.id, COUNT(r.id) AS n FROM binding b LEFT JOIN resource r ON r.bindingId = b.id AND r.round = ? GROUP BY b.id ORDER BY b.id',
    [round],
  )) as Array<{ id: number | string; n: number | string }>;
  return new Map(rows.map((row) => [Number(row.id), Number(row.n)]));
}
