import Redis from 'ioredis';
import Redlock from 'redlock';
import { REDIS_URL } from '../config';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';

/** Prefix of every Redis key the bench writes, so that it can clean up after itself. */
export const REDIS_KEY_PREFIX = 'slotlock-bench:';

/** Time to live of a lock: far longer than a cycle, so it never expires mid-cycle. */
const LOCK_TTL_MS = 10_000;

export interface RedlockRig {
  readonly contender: CycleContender;
  readonly version: () => Promise<string>;
  readonly close: () => Promise<void>;
}

/**
 * node-redlock v5 with one ioredis client (single Redis, so a quorum of one): all K
 * resources in one lock (`redlock.acquire(keys, ttl)`, one EVALSHA of its Lua script
 * that sets every key or none), then `lock.release()`. Short retry settings (3 retries,
 * 10 ms apart, 10 ms jitter); with disjoint keys they never fire.
 */
export function openRedlock(): RedlockRig {
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 });
  const redlock = new Redlock([redis], { retryCount: 3, retryDelay: 10, retryJitter: 10 });
  const contention: ContentionCount = { errors: 0 };
  // Redlock emits 'error' for every client error it tolerated; unhandled, an EventEmitter would throw.
  redlock.on('error', () => {
    contention.errors += 1;
  });
  return {
    contender: {
      label: 'redlock',
      contention,
      cycle: async (caller) => {
        const lock = await redlock.acquire(
          caller.keys.map((key) => REDIS_KEY_PREFIX + key),
          LOCK_TTL_MS,
        );
        await lock.release();
      },
    },
    version: async () => {
      const info = await redis.info('server');
      return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
    },
    close: async () => {
      const keys = await redis.keys(`${REDIS_KEY_PREFIX}*`);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    },
  };
}
