/** Row counts whose statement text is kept: the sets most calls take. */
const KEPT_ROW_COUNTS = 64;

/**
 * Keeps the SQL text of a statement per table and row count, built once: the text of a
 * lock cycle's statements is the same call after call, and building it (quoting the
 * table, joining placeholders) and hashing a new string in every cache it meets cost
 * more per call than the rest of the package's own work. Large sets are built each time
 * (they are rare, and their texts would pile up).
 */
export function keptStatementText(
  build: (table: string, rows: number) => string,
): (table: string, rows: number) => string {
  const byTable = new Map<string, string[]>();
  return (table, rows) => {
    if (rows > KEPT_ROW_COUNTS) return build(table, rows);
    let texts = byTable.get(table);
    if (texts === undefined) byTable.set(table, (texts = []));
    return (texts[rows] ??= build(table, rows));
  };
}
