/**
 * Peers: one acquire+release cycle of K keys by C concurrent callers, for this package
 * and four other ways to hold the same locks, all in one interleaved run per case.
 */
import { SlotLockService } from '../../src';
import { makeCallers } from '../lib/callers';
import { closedLoop, type ContentionCount, type LoopResult } from '../lib/closed-loop';
import { countPackageRetries } from '../lib/package-retries';
import { SilentLogger } from '../lib/silent-logger';
import type { CycleContender } from '../lib/contender';
import { mysqlRawAutocommitContender } from '../lib/contenders/mysql-raw';
import { namedLocksContender } from '../lib/contenders/named-locks';
import { packageContender } from '../lib/contenders/package';
import { phorgeLiteralContender } from '../lib/contenders/phorge-literal';
import { openRedlock } from '../lib/contenders/redlock';
import { mysqlRowCount, openMysqlDataSource, openMysqlPool, truncateMysql } from '../lib/engines/mariadb';
import { interleave, type Arm } from '../lib/interleave';
import { median, medianRatio } from '../lib/stats';

export interface PeersSettings {
  readonly keyCounts: readonly number[];
  readonly callerCounts: readonly number[];
  readonly rounds: number;
  readonly sliceMs: number;
  readonly warmupMs: number;
}

export interface PeerCase {
  readonly keys: number;
  readonly callers: number;
  /** `rounds[round][contender]`. */
  readonly rounds: readonly (readonly LoopResult[])[];
}

export interface PeersResult {
  readonly settings: PeersSettings;
  /** Contender labels; the package first. */
  readonly contenders: readonly string[];
  readonly redisVersion: string;
  readonly cases: readonly PeerCase[];
}

/** Contender order; the package must stay first (every ratio is against it). */
export const PEER_LABELS = ['package', 'raw mysql2 (same statements)', 'named locks', 'redlock', 'Phorge-literal port'];

export async function benchPeers(settings: PeersSettings, progress: (text: string) => void): Promise<PeersResult> {
  const poolSize = Math.max(...settings.callerCounts);
  const packageContention: ContentionCount = { errors: 0 };
  const stopCounting = countPackageRetries(packageContention);
  const packageSource = await openMysqlDataSource(poolSize, new SilentLogger());
  // The port gets a DataSource (and pool) of its own, as the raw contenders do.
  const portSource = await openMysqlDataSource(poolSize, new SilentLogger(), false);
  const rawPool = openMysqlPool(poolSize);
  const namedPool = openMysqlPool(poolSize);
  const redlock = openRedlock();
  try {
    const redisVersion = await redlock.version();
    const contenders: CycleContender[] = [
      packageContender(new SlotLockService(packageSource), packageContention, PEER_LABELS[0]),
      mysqlRawAutocommitContender(rawPool, PEER_LABELS[1]),
      namedLocksContender(namedPool),
      redlock.contender,
      phorgeLiteralContender(portSource),
    ];
    const cases: PeerCase[] = [];
    for (const keys of settings.keyCounts) {
      for (const callers of settings.callerCounts) {
        const set = makeCallers('PEER', keys, callers);
        const arms: Arm<LoopResult>[] = contenders.map((contender) => ({
          label: contender.label,
          warmup: () => closedLoop(set, settings.warmupMs, contender.cycle, contender.contention),
          measure: () => closedLoop(set, settings.sliceMs, contender.cycle, contender.contention),
        }));
        progress(`  K=${keys}, C=${callers}:`);
        const rounds = await interleave(arms, {
          rounds: settings.rounds,
          beforeSlice: () => truncateMysql(rawPool),
          afterSlice: async (arm) => {
            const left = await mysqlRowCount(rawPool);
            if (left !== 0) throw new Error(`${arm.label} left ${left} lock rows behind`);
          },
          onRound: (_, slices) => progress(` ${slices.map((slice) => slice.cyclesPerSecond.toFixed(0)).join('/')}`),
        });
        progress('\n');
        cases.push({ keys, callers, rounds });
      }
    }
    return { settings, contenders: contenders.map((contender) => contender.label), redisVersion, cases };
  } finally {
    stopCounting();
    await Promise.allSettled([
      redlock.close(),
      rawPool.end(),
      namedPool.end(),
      packageSource.destroy(),
      portSource.destroy(),
    ]);
  }
}

export function peerRate(item: PeerCase, contender: number): number {
  return median(item.rounds.map((round) => round[contender]!.cyclesPerSecond));
}

/** Median over rounds of contender / package, within each round. */
export function peerRatio(item: PeerCase, contender: number): number {
  return medianRatio(
    item.rounds,
    (round) => round[contender]!.cyclesPerSecond,
    (round) => round[0]!.cyclesPerSecond,
  );
}
