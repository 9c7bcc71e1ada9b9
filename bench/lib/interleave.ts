/**
 * The interleaving runner every comparison uses: one slice of each arm per round
 * (A, B, C, then C, B, A in the next round, and so on), several rounds. A drift in the
 * machine's speed (other jobs, the disk's fsync latency, the server's purge thread)
 * then hits every arm alike, and alternating the order cancels a steady drift within a
 * round as well as any advantage of going first or last. Ratios are taken within a
 * round and summarized as the median over rounds (see `medianRatio` in `stats.ts`).
 */

/** One contender or configuration, measured one slice at a time. */
export interface Arm<T> {
  readonly label: string;
  /** Runs once before the first round; its result is thrown away. */
  readonly warmup?: () => Promise<unknown>;
  /** Measures one slice. */
  readonly measure: () => Promise<T>;
}

export interface InterleaveOptions<T> {
  readonly rounds: number;
  /** Runs before every slice, untimed (e.g. empties the lock table). */
  readonly beforeSlice?: (arm: Arm<T>) => Promise<void>;
  /** Runs after every slice, untimed (e.g. checks that nothing was left behind). */
  readonly afterSlice?: (arm: Arm<T>, result: T) => Promise<void>;
  /** Called after each round with its results, in arm order (for progress output). */
  readonly onRound?: (round: number, results: readonly T[]) => void;
}

/** Runs the arms interleaved; `result[round][arm]` is in arm order whatever the run order was. */
export async function interleave<T>(arms: readonly Arm<T>[], options: InterleaveOptions<T>): Promise<T[][]> {
  for (const arm of arms) {
    if (arm.warmup === undefined) continue;
    await options.beforeSlice?.(arm);
    await arm.warmup();
  }
  const rounds: T[][] = [];
  for (let round = 0; round < options.rounds; round += 1) {
    const order = arms.map((_, index) => index);
    if (round % 2 === 1) order.reverse();
    const results = new Array<T>(arms.length);
    for (const index of order) {
      const arm = arms[index]!;
      await options.beforeSlice?.(arm);
      const result = await arm.measure();
      await options.afterSlice?.(arm, result);
      results[index] = result;
    }
    rounds.push(results);
    options.onRound?.(round + 1, results);
  }
  return rounds;
}
