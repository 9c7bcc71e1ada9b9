/**
 * Hand-written SVG charts (no chart library): line charts with linear or log axes,
 * grouped bar charts, and several panels side by side in one file. Colours are the
 * Okabe-Ito palette, readable with the common colour-vision deficiencies; every
 * series also has its own marker shape or label, so nothing depends on colour alone.
 */

export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

/** A drawn panel: its size and its SVG elements, positioned from (0, 0). */
export interface Panel {
  readonly width: number;
  readonly height: number;
  readonly content: string;
}

export interface Point {
  readonly x: number;
  readonly y: number;
}

export interface Series {
  readonly label: string;
  readonly points: readonly Point[];
  /** Dashed line (e.g. p99 next to the median). */
  readonly dashed?: boolean;
}

export interface Axis {
  readonly label: string;
  readonly log?: boolean;
  /** Where to put ticks and what to write there; default: computed. */
  readonly ticks?: readonly { readonly value: number; readonly label: string }[];
  /** Forces the range; default: the data's, padded. */
  readonly min?: number;
  readonly max?: number;
}

/** A short text under a data point (e.g. "2 INSERTs"). */
export interface Annotation {
  readonly x: number;
  readonly y: number;
  readonly text: string;
}

export interface LineChartSpec {
  readonly title: string;
  readonly annotations?: readonly Annotation[];
  readonly x: Axis;
  readonly y: Axis;
  readonly series: readonly Series[];
  readonly width?: number;
  readonly height?: number;
}

export interface BarChartSpec {
  readonly title: string;
  readonly groups: readonly string[];
  readonly series: readonly { readonly label: string; readonly values: readonly number[] }[];
  readonly y: Axis;
  /** Printed above each bar; default: none. */
  readonly valueLabel?: (value: number) => string;
  readonly width?: number;
  readonly height?: number;
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function round(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

/** A short human label for a tick value: 1,500 → "1.5k", 2,000,000 → "2M". */
export function shortNumber(value: number): string {
  const abs = Math.abs(value);
  const trim = (text: string): string => (text.includes('.') ? text.replace(/\.?0+$/, '') : text);
  if (abs >= 1e6) return `${trim((value / 1e6).toFixed(1))}M`;
  if (abs >= 1e3) return `${trim((value / 1e3).toFixed(1))}k`;
  if (abs >= 10 || abs === 0) return trim(value.toFixed(0));
  return trim(value.toFixed(abs >= 1 ? 1 : 2));
}

interface Scale {
  readonly toPixel: (value: number) => number;
  readonly ticks: readonly { readonly value: number; readonly label: string }[];
}

function niceStep(span: number, count: number): number {
  const raw = span / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  const nice = normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10;
  return nice * magnitude;
}

function makeScale(axis: Axis, values: readonly number[], pixelFrom: number, pixelTo: number): Scale {
  if (axis.log) {
    const positive = values.filter((value) => value > 0);
    const low = axis.min ?? 10 ** Math.floor(Math.log10(Math.min(...positive)));
    const high = axis.max ?? 10 ** Math.ceil(Math.log10(Math.max(...positive)));
    const logLow = Math.log10(low);
    const logSpan = Math.max(Math.log10(high) - logLow, 1e-9);
    const toPixel = (value: number): number =>
      pixelFrom + ((Math.log10(Math.max(value, low)) - logLow) / logSpan) * (pixelTo - pixelFrom);
    const ticks: { value: number; label: string }[] = [];
    for (let exponent = Math.ceil(logLow); exponent <= Math.log10(high) + 1e-9; exponent += 1) {
      ticks.push({ value: 10 ** exponent, label: shortNumber(10 ** exponent) });
    }
    return { toPixel, ticks: axis.ticks ?? ticks };
  }
  const low = axis.min ?? Math.min(0, ...values);
  const step = niceStep(Math.max(...values, low + 1e-9) - low, 5);
  const high = axis.max ?? Math.ceil(Math.max(...values) / step) * step;
  const span = Math.max(high - low, 1e-9);
  const toPixel = (value: number): number => pixelFrom + ((value - low) / span) * (pixelTo - pixelFrom);
  const ticks: { value: number; label: string }[] = [];
  for (let value = low; value <= high + step / 1e6; value += step) ticks.push({ value, label: shortNumber(value) });
  return { toPixel, ticks: axis.ticks ?? ticks };
}

const MARGIN = { left: 64, right: 16, top: 40, bottom: 52 };

function marker(shape: number, x: number, y: number, color: string): string {
  const [cx, cy] = [round(x), round(y)];
  switch (shape % 5) {
    case 0:
      return `<circle cx="${cx}" cy="${cy}" r="4" fill="${color}"/>`;
    case 1:
      return `<rect x="${round(x - 4)}" y="${round(y - 4)}" width="8" height="8" fill="${color}"/>`;
    case 2:
      return `<path d="M${cx} ${round(y - 5)} L${round(x + 5)} ${round(y + 4)} L${round(x - 5)} ${round(y + 4)} Z" fill="${color}"/>`;
    case 3:
      return `<path d="M${cx} ${round(y - 5)} L${round(x + 5)} ${cy} L${cx} ${round(y + 5)} L${round(x - 5)} ${cy} Z" fill="${color}"/>`;
    default:
      return `<path d="M${cx} ${round(y + 5)} L${round(x + 5)} ${round(y - 4)} L${round(x - 5)} ${round(y - 4)} Z" fill="${color}"/>`;
  }
}

function frame(
  title: string,
  width: number,
  height: number,
  xScale: Scale,
  yScale: Scale,
  xLabel: string,
  yLabel: string,
): string {
  const plotBottom = height - MARGIN.bottom;
  const parts: string[] = [];
  parts.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(title)}</text>`,
  );
  for (const tick of yScale.ticks) {
    const y = round(yScale.toPixel(tick.value));
    parts.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${y}" y2="${y}" stroke="#e3e3e3"/>`);
    parts.push(
      `<text x="${MARGIN.left - 6}" y="${y}" dy="0.32em" text-anchor="end" font-size="11">${escapeXml(tick.label)}</text>`,
    );
  }
  for (const tick of xScale.ticks) {
    const x = round(xScale.toPixel(tick.value));
    parts.push(`<line x1="${x}" x2="${x}" y1="${plotBottom}" y2="${plotBottom + 4}" stroke="#555"/>`);
    parts.push(
      `<text x="${x}" y="${plotBottom + 17}" text-anchor="middle" font-size="11">${escapeXml(tick.label)}</text>`,
    );
  }
  parts.push(
    `<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${plotBottom}" y2="${plotBottom}" stroke="#555"/>`,
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${plotBottom}" stroke="#555"/>`,
    `<text x="${(MARGIN.left + width - MARGIN.right) / 2}" y="${height - 12}" text-anchor="middle" font-size="12">${escapeXml(xLabel)}</text>`,
    `<text transform="translate(16 ${(MARGIN.top + plotBottom) / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(yLabel)}</text>`,
  );
  return parts.join('\n');
}

/** A legend block of `entries`, one per line, drawn from (x, y). */
function legend(
  entries: readonly { label: string; color: string; shape?: number; dashed?: boolean }[],
  x: number,
  y: number,
): string {
  return entries
    .map((entry, index) => {
      const top = y + index * 16;
      const swatch =
        entry.shape === undefined
          ? `<rect x="${x}" y="${top - 5}" width="14" height="10" fill="${entry.color}"/>`
          : `<line x1="${x}" x2="${x + 14}" y1="${top}" y2="${top}" stroke="${entry.color}" stroke-width="2"${entry.dashed ? ' stroke-dasharray="4 3"' : ''}/>` +
            marker(entry.shape, x + 7, top, entry.color);
      return `${swatch}<text x="${x + 20}" y="${top}" dy="0.32em" font-size="11">${escapeXml(entry.label)}</text>`;
    })
    .join('\n');
}

/** Room for a legend of these labels (11 px text, about 6.5 px a character, plus the swatch). */
function legendWidth(labels: readonly string[]): number {
  return Math.max(90, Math.ceil(Math.max(...labels.map((label) => label.length)) * 6.5) + 30);
}

export function lineChart(spec: LineChartSpec): Panel {
  const LEGEND_WIDTH = legendWidth(spec.series.map((series) => series.label));
  const width = (spec.width ?? 290) + LEGEND_WIDTH;
  const height = spec.height ?? 320;
  const plotRight = width - MARGIN.right - LEGEND_WIDTH;
  const points = spec.series.flatMap((series) => series.points);
  const xScale = makeScale(
    spec.x,
    [...points.map((point) => point.x), ...(spec.x.ticks ?? []).map((tick) => tick.value)],
    MARGIN.left + 16,
    plotRight - 16,
  );
  const yScale = makeScale(
    spec.y,
    points.map((point) => point.y),
    height - MARGIN.bottom,
    MARGIN.top,
  );
  const parts = [frame(spec.title, width - LEGEND_WIDTH, height, xScale, yScale, spec.x.label, spec.y.label)];
  spec.series.forEach((series, index) => {
    const color = PALETTE[index % PALETTE.length]!;
    const path = series.points
      .map((point, i) => `${i === 0 ? 'M' : 'L'}${round(xScale.toPixel(point.x))} ${round(yScale.toPixel(point.y))}`)
      .join(' ');
    parts.push(
      `<path d="${path}" fill="none" stroke="${color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="5 4"' : ''}/>`,
    );
    for (const point of series.points)
      parts.push(marker(index, xScale.toPixel(point.x), yScale.toPixel(point.y), color));
  });
  for (const note of spec.annotations ?? []) {
    parts.push(
      `<text x="${round(xScale.toPixel(note.x))}" y="${round(yScale.toPixel(note.y) + 18)}" text-anchor="middle" font-size="10" fill="#333">${escapeXml(note.text)}</text>`,
    );
  }
  parts.push(
    legend(
      spec.series.map((series, index) => ({
        label: series.label,
        color: PALETTE[index % PALETTE.length]!,
        shape: index,
        dashed: series.dashed ?? false,
      })),
      width - LEGEND_WIDTH + 4,
      MARGIN.top + 8,
    ),
  );
  return { width, height, content: parts.join('\n') };
}

export function barChart(spec: BarChartSpec): Panel {
  const LEGEND_WIDTH = legendWidth(spec.series.map((series) => series.label));
  const width = (spec.width ?? 290) + LEGEND_WIDTH;
  const height = spec.height ?? 320;
  const plotLeft = MARGIN.left;
  const plotRight = width - MARGIN.right - LEGEND_WIDTH;
  const groupWidth = (plotRight - plotLeft) / spec.groups.length;
  const barWidth = (groupWidth * 0.8) / spec.series.length;
  const values = spec.series.flatMap((series) => series.values);
  const xScale: Scale = {
    toPixel: (value) => plotLeft + groupWidth * (value + 0.5),
    ticks: spec.groups.map((group, index) => ({ value: index, label: group })),
  };
  const yScale = makeScale(spec.y, values, height - MARGIN.bottom, MARGIN.top);
  const parts = [frame(spec.title, width - LEGEND_WIDTH, height, xScale, yScale, '', spec.y.label)];
  const base = height - MARGIN.bottom;
  spec.series.forEach((series, seriesIndex) => {
    const color = PALETTE[seriesIndex % PALETTE.length]!;
    series.values.forEach((value, groupIndex) => {
      const x = plotLeft + groupWidth * groupIndex + groupWidth * 0.1 + barWidth * seriesIndex;
      const y = yScale.toPixel(value);
      parts.push(
        `<rect x="${round(x)}" y="${round(y)}" width="${round(barWidth - 1)}" height="${round(Math.max(base - y, 0))}" fill="${color}"/>`,
      );
      if (spec.valueLabel !== undefined) {
        parts.push(
          `<text x="${round(x + barWidth / 2)}" y="${round(y - 3)}" text-anchor="middle" font-size="9">${escapeXml(spec.valueLabel(value))}</text>`,
        );
      }
    });
  });
  parts.push(
    legend(
      spec.series.map((series, index) => ({ label: series.label, color: PALETTE[index % PALETTE.length]! })),
      width - LEGEND_WIDTH + 4,
      MARGIN.top + 8,
    ),
  );
  return { width, height, content: parts.join('\n') };
}

/** One SVG document: the panels side by side, a caption line under them. */
export function svgDocument(panels: readonly Panel[], caption: string): string {
  const width = panels.reduce((total, panel) => total + panel.width, 0);
  const height = Math.max(...panels.map((panel) => panel.height)) + 24;
  let offset = 0;
  const groups = panels.map((panel) => {
    const group = `<g transform="translate(${offset} 0)">\n${panel.content}\n</g>`;
    offset += panel.width;
    return group;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...groups,
    `<text x="8" y="${height - 8}" font-size="10" fill="#555">${escapeXml(caption)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
