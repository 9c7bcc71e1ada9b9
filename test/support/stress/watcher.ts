/**
 * A watcher that reads the database over and over while the workers run, each read in
 * one consistent snapshot, so that a state that must never exist (a binding with two
 * resources, a set held in part) is seen if it lasts even a few milliseconds. On a
 * cluster it reads every node in turn: each node has its own copy of the data.
 */
import type { DataSource, QueryRunner } from 'typeorm';
import { describeError, sample, sleep, type ErrorSample } from './worker-kit';

/** One read of one node; `node` is the position of its DataSource. */
export type Scan = (runner: QueryRunner, node: number) => Promise<void>;

export class Watcher {
  /** Reads made, all nodes together. */
  scans = 0;
  /** Reads that failed (the watcher's own queries: should be none). */
  errors = 0;
  readonly errorSamples: ErrorSample[] = [];
  #running = false;
  #loop: Promise<void> | undefined;

  constructor(
    private readonly dataSources: readonly DataSource[],
    private readonly scan: Scan,
    private readonly pauseMs = 1,
  ) {}

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops after the read in progress, then makes one last read of every node. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  async #run(): Promise<void> {
    const runners = this.dataSources.map((dataSource) => dataSource.createQueryRunner());
    try {
      let node = 0;
      while (this.#running) {
        await this.#scanOnce(runners[node]!, node);
        node = (node + 1) % runners.length;
        await sleep(this.pauseMs);
      }
      for (let last = 0; last < runners.length; last += 1) await this.#scanOnce(runners[last]!, last);
    } finally {
      await Promise.all(runners.map((runner) => runner.release()));
    }
  }

  async #scanOnce(runner: QueryRunner, node: number): Promise<void> {
    try {
      // One snapshot for every statement of the scan: what they read existed together.
      await runner.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
      try {
        await this.scan(runner, node);
      } finally {
        await runner.query('COMMIT');
      }
      this.scans += 1;
    } catch (error) {
      this.errors += 1;
      sample(this.errorSamples, describeError(`watch node ${node}`, error));
    }
  }
}
