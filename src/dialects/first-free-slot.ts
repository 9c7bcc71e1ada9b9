/**
 * The lowest free slot of a family, found on the server: the slot numbers held (parsed
 * out of the keys `${prefix}${n})` of the family, by a scan of the lock table), sorted,
 * and the first gap. Written once for every engine; each says how it cuts the number
 * out of a key (`middle`), which keys belong to the family (`inFamily`), which middles
 * are numbers written exactly so (`canonical`), how to make one a number (`toNumber`),
 * and its placeholders for the limit (the second is for engines that number them by
 * position, where the limit appears twice).
 */
export function firstFreeSlotSql(
  quotedTable: string,
  middle: string,
  inFamily: string,
  canonical: string,
  toNumber: string,
  limit: string,
  limitAgain: string = limit,
): string {
  return (
    `WITH held AS (SELECT ${middle} AS m FROM ${quotedTable} WHERE ${inFamily}), ` +
    `numbers AS (SELECT ${toNumber} AS n FROM held WHERE ${canonical}), ` +
    `bounded AS (SELECT n FROM numbers WHERE n < ${limit}), ` +
    `gaps AS (SELECT n + 1 AS free, LEAD(n) OVER (ORDER BY n) AS next FROM bounded) ` +
    `SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM bounded WHERE n = 0) THEN 0 ` +
    `ELSE (SELECT MIN(free) FROM gaps WHERE (next IS NULL OR next > free) AND free < ${limitAgain}) END AS free`
  );
}
