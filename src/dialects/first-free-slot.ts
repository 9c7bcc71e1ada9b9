/**
 * The first free slot of a family at or after a start, wrapping round to the lowest,
 * found on the server: the slot numbers held (parsed out of the keys `${prefix}${n})`
 * of the family, by a scan of the lock table), sorted, and the gaps between them.
 * Written once for every engine; each says how it cuts the number out of a key
 * (`middle`), which keys belong to the family (`inFamily`), which middles are numbers
 * written exactly so (`canonical`), how to make one a number (`toNumber`), and its
 * placeholders for the start and the limit, which come first in the statement (the
 * `p` row), before those of `middle` and `inFamily`.
 *
 * Why a start: every caller that reaches the scan at once would otherwise race for the
 * same lowest slot; a random start spreads them over the free slots as the random
 * batches do.
 */
export function firstFreeSlotSql(
  quotedTable: string,
  middle: string,
  inFamily: string,
  canonical: string,
  toNumber: string,
  start: string,
  limit: string,
): string {
  return (
    `WITH p AS (SELECT ${start} AS s, ${limit} AS lim), ` +
    `held AS (SELECT ${middle} AS m FROM ${quotedTable} WHERE ${inFamily}), ` +
    `numbers AS (SELECT ${toNumber} AS n FROM held WHERE ${canonical}), ` +
    `bounded AS (SELECT n FROM numbers, p WHERE n < p.lim), ` +
    `gaps AS (SELECT n + 1 AS free, LEAD(n) OVER (ORDER BY n) AS next FROM bounded), ` +
    `openings AS (SELECT free FROM gaps, p WHERE (next IS NULL OR next > free) AND free < p.lim) ` +
    `SELECT CASE ` +
    `WHEN NOT EXISTS (SELECT 1 FROM bounded, p WHERE n = p.s) THEN (SELECT s FROM p) ` +
    `ELSE COALESCE((SELECT MIN(free) FROM openings, p WHERE free > p.s), ` +
    `CASE WHEN NOT EXISTS (SELECT 1 FROM bounded WHERE n = 0) THEN 0 ELSE (SELECT MIN(free) FROM openings) END) ` +
    `END AS free`
  );
}
