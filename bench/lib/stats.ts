/** Small descriptive statistics for benchmark samples. */

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

/**
 * The `q` quantile (0..1) by linear interpolation between closest ranks, as
 * spreadsheets and numpy's default compute it. Throws on an empty sample.
 */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of an empty sample');
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.ceil(position);
  const low = sorted[below]!;
  const high = sorted[above]!;
  return low + (high - low) * (position - below);
}

export function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of an empty sample');
  return sum(values) / values.length;
}

/** Population standard deviation (the counts measured are the whole population). */
export function standardDeviation(values: readonly number[]): number {
  const average = mean(values);
  return Math.sqrt(mean(values.map((value) => (value - average) ** 2)));
}

/** Standard deviation over mean: 0 means perfectly even. */
export function coefficientOfVariation(values: readonly number[]): number {
  const average = mean(values);
  return average === 0 ? 0 : standardDeviation(values) / average;
}

/** Median over rounds of `a(round) / b(round)`: each ratio is taken within one round. */
export function medianRatio<R>(rounds: readonly R[], a: (round: R) => number, b: (round: R) => number): number {
  return median(rounds.map((round) => a(round) / b(round)));
}
