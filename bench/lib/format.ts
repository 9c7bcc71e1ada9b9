/** Text and Markdown tables, and how numbers are printed in them. */

export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

/** A ratio next to a target: three decimals when two would round it onto the target (0.897 is not 0.90). */
export function formatRatioNear(ratio: number, target: number): string {
  return ratio.toFixed(2) === target.toFixed(2) && ratio !== target ? `${ratio.toFixed(3)}x` : formatRatio(ratio);
}

/** A rate or count with thousands separators, no decimals. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Milliseconds with a precision that suits their size. */
export function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A fixed-width table for the terminal: first column left-aligned, the rest right-aligned. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(header), rule, ...rows.map(line)].join('\n');
}

/** A GitHub Markdown table: first column left-aligned, the rest right-aligned. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  const line = (cells: readonly string[]): string => `| ${cells.map(escape).join(' | ')} |`;
  const align = header.map((_, column) => (column === 0 ? ':--' : '--:'));
  return [line(header), `|${align.map((cell) => ` ${cell} `).join('|')}|`, ...rows.map(line)].join('\n');
}
