/**
 * An aligned plain-text table: a header row, then one row per record, columns separated
 * by two spaces, the last column not padded (no trailing blanks).
 *
 * @example
 * ```ts
 * formatTable(['key', 'owner'], [['host(7)', 'PHID-DRYL-a']]);
 * // "key      owner\nhost(7)  PHID-DRYL-a\n"
 * ```
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [header, ...rows].map((row) => row.map(printable));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => displayWidth(row[column] ?? ''))));
  return cells
    .map((row) =>
      row
        .map((cell, column) =>
          column === row.length - 1 ? cell : cell + ' '.repeat(widths[column]! - displayWidth(cell)),
        )
        .join('  '),
    )
    .join('\n')
    .concat('\n');
}

/**
 * Keys are arbitrary strings: a newline or other control character would break the
 * table, so such a cell is shown JSON-quoted instead.
 */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(text) ? JSON.stringify(text) : text;
}

/** Characters as a terminal counts them (code points; wide East Asian characters are not special-cased). */
function displayWidth(text: string): number {
  return [...text].length;
}
