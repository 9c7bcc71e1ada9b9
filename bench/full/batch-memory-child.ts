/**
 * Child process of the batch-size bench: measures the memory one acquireLocks +
 * releaseLocks of a large batch needs, on top of the keys themselves.
 *
 * Run by batch-size.ts as `node --expose-gc -r ts-node/register/transpile-only
 * bench/full/batch-memory-child.ts <size> <keyBytes>`; prints one JSON line
 * (MemoryMeasurement). The keys are built, one small cycle warms the code paths and
 * reads max_allowed_packet, then a GC; that is the baseline. During the batch,
 * `process.memoryUsage()` is sampled every millisecond (samples land while the
 * statement is on the wire, when its text and packet are alive), and
 * `process.resourceUsage().maxRSS` gives the kernel's high-water mark.
 */
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { SlotLockService } from '../../src';
import { openMysqlDataSource } from '../lib/engines/mariadb';
import { SilentLogger } from '../lib/silent-logger';
import { batchKeys, batchOwner } from './batch-keys';

export interface MemoryMeasurement {
  readonly size: number;
  /** UTF-8 bytes of all the keys of the batch. */
  readonly keyBytes: number;
  readonly baselineRss: number;
  readonly baselineHeapUsed: number;
  /** Highest sampled values during the batch. */
  readonly sampledPeakRss: number;
  readonly sampledPeakHeapUsed: number;
  readonly sampledPeakExternal: number;
  /** maxRSS (bytes) before and after the batch: a rise means the batch set the process's high-water mark. */
  readonly maxRssBefore: number;
  readonly maxRssAfter: number;
  readonly acquireMs: number;
  readonly releaseMs: number;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function main(): Promise<void> {
  const size = Number(process.argv[2]);
  const keyLength = Number(process.argv[3]);
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(keyLength)) throw new Error('usage: <size> <keyBytes>');
  const dataSource = await openMysqlDataSource(1, new SilentLogger(), false);
  try {
    const service = new SlotLockService(dataSource);
    const tag = `mem-${size}-${process.pid}`;
    const keys = batchKeys(size, keyLength, tag);
    const owner = batchOwner(tag);
    await service.acquireLocks(owner, batchKeys(10, keyLength, `${tag}-warm`));
    await service.releaseLocks(owner);
    gc();
    gc();
    const baseline = process.memoryUsage();
    const maxRssBefore = process.resourceUsage().maxRSS * 1024;
    let peakRss = baseline.rss;
    let peakHeap = baseline.heapUsed;
    let peakExternal = baseline.external + baseline.arrayBuffers;
    const sample = (): void => {
      const now = process.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
      peakExternal = Math.max(peakExternal, now.external + now.arrayBuffers);
    };
    const sampler = setInterval(sample, 1);
    const t0 = performance.now();
    await service.acquireLocks(owner, keys);
    const t1 = performance.now();
    sample();
    await service.releaseLocks(owner);
    const t2 = performance.now();
    clearInterval(sampler);
    sample();
    const measurement: MemoryMeasurement = {
      size,
      keyBytes: keys.reduce((total, key) => total + Buffer.byteLength(key), 0),
      baselineRss: baseline.rss,
      baselineHeapUsed: baseline.heapUsed,
      sampledPeakRss: peakRss,
      sampledPeakHeapUsed: peakHeap,
      sampledPeakExternal: peakExternal - baseline.external - baseline.arrayBuffers,
      maxRssBefore,
      maxRssAfter: process.resourceUsage().maxRSS * 1024,
      acquireMs: t1 - t0,
      releaseMs: t2 - t1,
    };
    process.stdout.write(`${JSON.stringify(measurement)}\n`);
  } finally {
    await dataSource.destroy();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
