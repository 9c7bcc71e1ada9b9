/**
 * docs/benchmarks.md and its charts, from the results of bench:full: pure functions,
 * numbers in, text out.
 */
import { formatBytes, formatCount, formatMs, formatRatio, formatRatioNear, markdownTable } from '../lib/format';
import type { MachineDescription } from '../lib/machine';
import { contentionPerThousand } from '../lib/closed-loop';
import { barChart, lineChart, svgDocument, type Panel } from '../lib/svg';
import { heapGrowth, peakRssDelta, summarizeBatch, type BatchResult } from './batch-size';
import { contentionTarget, describeContentionTarget, summarizeContention, type ContentionResult } from './contention';
import { fairnessSection, type FairnessResult } from './fairness';
import { GALERA_ARMS, galeraRate, galeraRatio, type GaleraCase, type GaleraResult } from './galera';
import { PEER_LABELS, peerRate, peerRatio, type PeersResult } from './peers';
import { summarizeSlotLimits, type SlotLimitsResult } from './slot-limits';
import { summarizeTableSize, type TableSizeResult } from './table-size';

export interface FullResults {
  readonly date: Date;
  readonly machine: MachineDescription;
  readonly versions: { readonly mariadb: string; readonly postgres: string; readonly redis: string };
  readonly seconds: number;
  readonly peers?: PeersResult;
  readonly tableSize?: TableSizeResult;
  readonly batch?: BatchResult;
  readonly contention?: ContentionResult;
  readonly slots?: SlotLimitsResult;
  readonly galera?: GaleraResult;
  readonly fairness?: FairnessResult;
}

/** The slot target (issue 13): at limits of 100,000 and 1,000,000, within this times the latency at limit 4. */
export const SLOT_LIMIT_TARGET = 2;

/** The table-size target: at 1,000,000 held locks, no worse than this times the empty table. */
export const TABLE_SIZE_TARGET = 1.3;

export const CHART_FILES = {
  peers: 'bench-peers.svg',
  tableSize: 'bench-table-size.svg',
  batch: 'bench-batch-size.svg',
  contention: 'bench-contention.svg',
  slots: 'bench-slot-limits.svg',
  galera: 'bench-galera.svg',
} as const;

/** What each peer does not give, in the order of PEER_LABELS after the package. */
const PEER_CAVEATS: Readonly<Record<string, string>> = {
  [PEER_LABELS[1]!]:
    'The same statements without the package: no input checks (owner and key bytes, lone surrogates), no retry ' +
    'of deadlocks with backoff, no packet-size chunking (a large set fails instead), no lock map of who holds ' +
    'what on conflict, no joining a caller’s transaction with a savepoint. Same durability and all-or-nothing.',
  [PEER_LABELS[2]!]:
    'Not durable and not transactional: the locks belong to the session and vanish when its connection drops ' +
    '(which also pins one pooled connection per holder for as long as it holds), so they cannot commit with your ' +
    'own writes or outlive the process. Not all-or-nothing: the set is taken one GET_LOCK at a time, others see ' +
    'partial sets, and a failure has to release what it got. No holder names (IS_USED_LOCK gives a connection ' +
    'id), names are server-wide and at most 64 characters, not replicated (Galera ignores them), one round trip per key.',
  [PEER_LABELS[3]!]:
    'Not in the database: no transaction with your own SQL writes, so a crash between the lock and the write ' +
    'leaves them out of step. Leases, not locks: a lock expires after its TTL whether or not the holder is done ' +
    '(automatic extension only inside `using`), and a Redis restart without persistence, or a failover, drops ' +
    'them. All-or-nothing across keys (one Lua script), but no holder names (the value is a random token), no ' +
    'listing of who holds what, and a single Redis here (no quorum).',
  [PEER_LABELS[4]!]:
    'The same table and guarantees (durable, transactional, all-or-nothing inside its transaction), but K + 2 ' +
    'round trips (BEGIN, one INSERT per key, COMMIT) plus the DELETE, TypeORM’s insert machinery per row, keys in ' +
    'the caller’s order (overlapping sets can deadlock), no retry policy beyond what the caller writes, and a ' +
    'duplicate-key error instead of a lock map on conflict.',
};

function verdict(met: boolean): string {
  return met ? 'met' : 'NOT met';
}

// --- peers -------------------------------------------------------------------------

function peersSection(peers: PeersResult): string {
  const { settings } = peers;
  const header = [
    'case',
    ...peers.contenders.map((label, index) => (index === 0 ? `${label} cycles/s` : `${label} cycles/s (vs package)`)),
  ];
  const rows = peers.cases.map((item) => [
    `K=${item.keys}, C=${item.callers}`,
    ...peers.contenders.map((_, index) =>
      index === 0
        ? formatCount(peerRate(item, 0))
        : `${formatCount(peerRate(item, index))} (${formatRatio(peerRatio(item, index))})`,
    ),
  ]);
  const retries = peers.cases.map((item) => [
    `K=${item.keys}, C=${item.callers}`,
    ...peers.contenders.map((_, index) => contentionPerThousand(item.rounds.map((round) => round[index]!)).toFixed(1)),
  ]);
  return [
    '## Peers',
    '',
    `![Cycles per second against K, per contender](${CHART_FILES.peers})`,
    '',
    `One cycle takes a set of K keys and releases it; C callers run concurrently, each with its own owner and ` +
      `disjoint keys, so nothing ever conflicts. ${settings.rounds} interleaved rounds of ${settings.sliceMs} ms per ` +
      'contender per case; the lock table is emptied before every slice. Rates are medians over rounds; each ratio ' +
      '(peer / package) is taken within one round, then the median over rounds.',
    '',
    markdownTable(header, rows),
    '',
    '- **package**: `SlotLockService.acquireLocks(owner, keys)` then `releaseLocks(owner)` on a TypeORM DataSource ' +
      '(one multi-row INSERT in autocommit, then DELETE by owner).',
    '- **raw mysql2 (same statements)**: mysql2/promise pool sending the very statements the package sends.',
    '- **named locks**: one pooled connection per cycle, `SELECT GET_LOCK(key, 0)` per key, then `SELECT RELEASE_ALL_LOCKS()` ' +
      '(a refused GET_LOCK releases what was got).',
    '- **redlock**: node-redlock 5 (beta) with one ioredis client on Redis; all K resources in one `acquire`, TTL 10 s, ' +
      'retryCount 3, retryDelay 10 ms, retryJitter 10 ms; then `lock.release()`.',
    '- **Phorge-literal port**: `dataSource.transaction(m => for each key: m.getRepository(DrydockSlotLock).insert(...))`, ' +
      'then `getRepository(DrydockSlotLock).delete({ ownerPHID })`.',
    '',
    'Retried contention per 1,000 cycles (deadlocks between the INSERTs and DELETEs of different owners: the duplicate ' +
      'check of an INSERT locks delete-marked index records and their neighbours, and under REPEATABLE READ a DELETE by ' +
      'owner takes next-key locks on key_owner; the package retries them with its jittered exponential backoff, the others at once for three attempts, then ' +
      'after a random pause of up to 2^n ms, at most 50 ms, so that they cannot livelock):',
    '',
    markdownTable(['case', ...peers.contenders], retries),
    '',
    '### What each peer does not give',
    '',
    'Speed alone does not compare like with like. The package gives: locks in the database, durable, committed ' +
      'together with your own writes when you pass your transaction’s manager; all-or-nothing across keys in one ' +
      'statement; holder names (who holds what, readable by anyone, byte-compatible with Phorge’s table); locks that ' +
      'last until released, across restarts.',
    '',
    ...peers.contenders.slice(1).map((label) => `- **${label}**: ${PEER_CAVEATS[label] ?? ''}`),
    '',
  ].join('\n');
}

function peersChart(peers: PeersResult): string {
  const callerCounts = [...new Set(peers.cases.map((item) => item.callers))];
  const keyCounts = [...new Set(peers.cases.map((item) => item.keys))];
  const panels: Panel[] = callerCounts.map((callers) =>
    lineChart({
      title: `Acquire+release cycles/s, C=${callers}`,
      x: { label: 'K, keys per set (log)', log: true, ticks: keyCounts.map((k) => ({ value: k, label: String(k) })) },
      y: { label: 'cycles/s (log)', log: true },
      series: peers.contenders.map((label, index) => ({
        label,
        points: peers.cases
          .filter((item) => item.callers === callers)
          .map((item) => ({ x: item.keys, y: peerRate(item, index) })),
      })),
      width: 340,
    }),
  );
  return svgDocument(panels, 'drydock-slotlock bench:full: medians over interleaved rounds; see docs/benchmarks.md');
}

// --- table size --------------------------------------------------------------------

function sizeLabel(size: number): string {
  return size === 0 ? 'empty' : size >= 1e6 ? `${size / 1e6}M` : `${size / 1e3}k`;
}

function tableSizeSection(result: TableSizeResult): string {
  const { settings } = result;
  const largest = settings.sizes[settings.sizes.length - 1]!;
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const item of result.cases) {
    const summary = summarizeTableSize(result, item);
    for (const size of summary) {
      rows.push([
        `K=${item.keys}, ${formatCount(size.size)} held`,
        formatMs(size.medianMs),
        formatMs(size.p99Ms),
        formatRatio(size.medianRatio),
        formatRatio(size.p99Ratio),
        formatMs(size.releaseMedianMs),
        formatCount(size.samples),
      ]);
    }
    const last = summary[summary.length - 1]!;
    verdicts.push(
      `K=${item.keys}: median ${formatRatioNear(last.medianRatio, TABLE_SIZE_TARGET)} ` +
        `(${verdict(last.medianRatio <= TABLE_SIZE_TARGET)}), p99 ${formatRatioNear(last.p99Ratio, TABLE_SIZE_TARGET)} ` +
        `(${verdict(last.p99Ratio <= TABLE_SIZE_TARGET)})`,
    );
  }
  return [
    '### Table size',
    '',
    `![Acquisition latency against locks already held](${CHART_FILES.tableSize})`,
    '',
    `Latency of one \`acquireLocks\` (single caller, fresh keys every time, released after each) on tables already ` +
      `holding ${settings.sizes.map((size) => formatCount(size)).join(', ')} locks (10 per owner, loaded with raw ` +
      `multi-row INSERTs of 10,000 rows in ${result.fillSeconds.toFixed(0)} s). One table per size, one service per ` +
      `table, ${settings.rounds} interleaved rounds of ${settings.sliceMs} ms per table. Median and p99 pool every ` +
      'round; the ratios against the empty table are medians of per-round ratios.',
    '',
    markdownTable(
      [
        'case',
        'acquire median ms',
        'acquire p99 ms',
        'median vs empty',
        'p99 vs empty',
        'release median ms',
        'samples',
      ],
      rows,
    ),
    '',
    `Target: with ${formatCount(largest)} locks held, no worse than ${formatRatio(TABLE_SIZE_TARGET)} the empty table. ` +
      `${verdicts.join('; ')}.`,
    '',
    `Table sizes (data + indexes, as InnoDB reports them): ${settings.sizes
      .map((size, index) => `${sizeLabel(size)} ${formatBytes(result.tableBytes[index]!)}`)
      .join(', ')}; innodb_buffer_pool_size ${formatBytes(result.bufferPoolBytes)}. An acquisition touches one leaf ` +
      'of the unique index `key_lock` per key (a B-tree lookup, logarithmic in the table size) and appends to the ' +
      'clustered index; the release finds the owner’s rows through `key_owner`.',
    '',
  ].join('\n');
}

function tableSizeChart(result: TableSizeResult): string {
  const sizes = result.settings.sizes;
  const ticks = sizes.map((size, index) => ({ value: index, label: sizeLabel(size) }));
  const panels = result.cases.map((item) => {
    const summary = summarizeTableSize(result, item);
    return lineChart({
      title: `acquireLocks latency, K=${item.keys}`,
      x: { label: 'locks already held', ticks, min: 0, max: sizes.length - 1 },
      y: { label: 'ms', min: 0 },
      series: [
        { label: 'median', points: summary.map((s, index) => ({ x: index, y: s.medianMs })) },
        { label: 'p99', points: summary.map((s, index) => ({ x: index, y: s.p99Ms })), dashed: true },
      ],
      width: 320,
    });
  });
  return svgDocument(panels, 'drydock-slotlock on MariaDB: pooled over interleaved rounds; see docs/benchmarks.md');
}

// --- batch size --------------------------------------------------------------------

function batchSection(result: BatchResult): string {
  const { settings } = result;
  const summary = summarizeBatch(result);
  const rows = summary.map((s) => [
    formatCount(s.size),
    String(s.statements),
    formatMs(s.acquireMs),
    formatCount(s.acquireLocksPerSecond),
    formatRatio(s.vsSingle),
    formatCount(s.releaseLocksPerSecond),
  ]);
  const memoryRows = result.memory.map((m) => {
    const peak = peakRssDelta(m);
    const heap = heapGrowth(m);
    return [
      formatCount(m.size),
      formatBytes(m.keyBytes),
      `${formatBytes(peak.bytes)} (${peak.source})`,
      `${(peak.bytes / m.keyBytes).toFixed(1)}x`,
      `${formatBytes(heap)} (${formatBytes(m.sampledPeakHeapUsed - m.baselineHeapUsed)}, ${formatBytes(m.sampledPeakExternal)})`,
      `${(heap / m.keyBytes).toFixed(1)}x`,
      formatMs(m.acquireMs),
    ];
  });
  return [
    '### Batch size',
    '',
    `![Locks per second against batch size](${CHART_FILES.batch})`,
    '',
    `One caller acquires N keys in one \`acquireLocks\` and releases them with one \`releaseLocks\`. Every key is ` +
      `${settings.keyBytes} bytes, so that the larger batches take several INSERTs (the package splits a set into ` +
      `statements of at most 128 KiB, less if max_allowed_packet, here ${formatBytes(result.maxAllowedPacket)}, ` +
      `is smaller; mysql2 writes a key as hex, 2 bytes per key byte): "INSERTs" counts the statements of one ` +
      `acquisition, several of them run in one transaction. ` +
      `${settings.rounds} interleaved rounds, each size repeated for at least ${settings.sliceMs} ms per round ` +
      '(at least once); rates are medians over rounds, "vs 1 key" is the median of per-round ratios.',
    '',
    markdownTable(['keys', 'INSERTs', 'acquire ms', 'locks/s acquired', 'vs 1 key', 'locks/s released'], rows),
    '',
    'Memory of one acquisition and release, in a child process per size. Baseline: after building the keys (their ' +
      'own memory is not counted), one small warm-up cycle and a GC. Peak RSS growth is what the operating system ' +
      'sees: from `process.resourceUsage().maxRSS` when the batch raised the process’s high-water mark, else from ' +
      '`process.memoryUsage().rss` sampled every millisecond (0 means the batch fit in memory the process had already ' +
      'reserved). Heap + external growth is sampled `heapUsed` plus `external` and `arrayBuffers` (the packet ' +
      'buffers) above the baseline: it counts garbage not yet collected, and misses what lives only between two samples.',
    '',
    markdownTable(
      [
        'keys',
        'key bytes',
        'peak RSS growth',
        'RSS growth / key bytes',
        'peak heap + external growth (heap, external)',
        'heap + external / key bytes',
        'acquire ms',
      ],
      memoryRows,
    ),
    '',
  ].join('\n');
}

function batchChart(result: BatchResult): string {
  const summary = summarizeBatch(result);
  const panel = lineChart({
    title: `Locks per second against batch size (${result.settings.keyBytes}-byte keys)`,
    x: { label: 'keys per acquireLocks (log)', log: true },
    y: { label: 'locks/s (log)', log: true },
    series: [
      { label: 'acquired', points: summary.map((s) => ({ x: s.size, y: s.acquireLocksPerSecond })) },
      { label: 'released', points: summary.map((s) => ({ x: s.size, y: s.releaseLocksPerSecond })), dashed: true },
    ],
    annotations: summary
      .filter((s) => s.statements > 1)
      .map((s) => ({ x: s.size, y: s.acquireLocksPerSecond, text: `${s.statements} INSERTs` })),
    width: 480,
  });
  return svgDocument([panel], 'drydock-slotlock on MariaDB: medians over interleaved rounds; see docs/benchmarks.md');
}

// --- contention --------------------------------------------------------------------

function contentionSection(result: ContentionResult): string {
  const { settings } = result;
  const summary = summarizeContention(result);
  const rows = summary.map((s) => [
    `N=${s.callers}`,
    formatCount(s.acquisitionsPerSecond),
    formatRatio(s.vsSmallest),
    s.failedAttemptsPerAcquisition.toFixed(2),
    s.rejectionsPerAcquisition.toFixed(2),
    s.retriesPerAcquisition.toFixed(3),
    s.perSlot.map((count) => formatCount(count)).join(' / '),
    s.slotCv.toFixed(3),
    s.callerCv.toFixed(3),
  ]);
  return [
    '### Slot contention',
    '',
    `![Acquisitions per slot](${CHART_FILES.contention})`,
    '',
    `N callers compete for \`acquireSlot(owner, name, ${settings.slots}, { waitMs })\`: ${settings.slots} slots, each ` +
      `caller holds the slot it got for ${settings.holdMs} ms, releases it and goes again; a caller that finds every ` +
      "slot held waits in the package's line of this process's waiters for the family, and a slot released here goes " +
      `to the first in line. ${settings.rounds} interleaved rounds of ${settings.sliceMs} ms per N. A ` +
      '"failed attempt" is a statement of a successful `acquireSlot` beyond its first (`AcquiredSlot.attempts - 1`, ' +
      'every try of its wait included): on MariaDB a read that found every slot held, or an INSERT that met a slot ' +
      'taken since its read; a "rejection" is a call that gave up after `waitMs`. CV = coefficient of variation ' +
      '(standard deviation / mean): 0 is perfectly even.',
    '',
    markdownTable(
      [
        'callers',
        'acquisitions/s',
        `vs N=${settings.callerCounts[0]}`,
        'failed attempts / acq.',
        'rejections / acq.',
        'retried deadlocks / acq.',
        'acquisitions per slot',
        'slot CV',
        'caller CV',
      ],
      rows,
    ),
    '',
    describeContentionTarget(contentionTarget(result)),
    '',
  ].join('\n');
}

function contentionChart(result: ContentionResult): string {
  const summary = summarizeContention(result);
  const slots = result.settings.slots;
  const share = barChart({
    title: 'Share of acquisitions per slot',
    groups: summary.map((s) => `N=${s.callers}`),
    series: Array.from({ length: slots }, (_, slot) => ({
      label: `slot ${slot}`,
      values: summary.map(
        (s) =>
          (100 * s.perSlot[slot]!) /
          Math.max(
            1,
            s.perSlot.reduce((a, b) => a + b, 0),
          ),
      ),
    })),
    y: { label: '% of acquisitions', min: 0, max: 50 },
    valueLabel: (value) => value.toFixed(0),
    width: 300,
  });
  const rate = barChart({
    title: 'Acquisitions/s',
    groups: summary.map((s) => `N=${s.callers}`),
    series: [{ label: 'acquisitions/s', values: summary.map((s) => s.acquisitionsPerSecond) }],
    y: { label: 'acquisitions/s', min: 0 },
    valueLabel: (value) => formatCount(value),
    width: 260,
  });
  const conflicts = barChart({
    title: 'Conflicts per acquisition',
    groups: summary.map((s) => `N=${s.callers}`),
    series: [
      { label: 'failed attempts', values: summary.map((s) => s.failedAttemptsPerAcquisition) },
      { label: 'rejections', values: summary.map((s) => s.rejectionsPerAcquisition) },
    ],
    y: { label: 'per acquisition', min: 0 },
    valueLabel: (value) => value.toFixed(1),
    width: 280,
  });
  return svgDocument([share, rate, conflicts], 'drydock-slotlock acquireSlot on MariaDB: see docs/benchmarks.md');
}

// --- slot families ------------------------------------------------------------------

function slotLimitsSection(result: SlotLimitsResult): string {
  const { settings } = result;
  const rows: string[][] = [];
  const verdicts: string[] = [];
  for (const engine of result.engines) {
    const summary = summarizeSlotLimits(result, engine);
    for (const s of summary) {
      rows.push([
        engine.engine,
        formatCount(s.limit),
        formatMs(s.medianMs),
        formatMs(s.p99Ms),
        formatRatio(s.vsSmallest),
        s.attemptsPerAcquisition.toFixed(2),
        formatCount(s.samples),
      ]);
    }
    const large = summary.filter((s) => s.limit >= 100_000);
    if (large.length > 0) {
      const worst = Math.max(...large.map((s) => s.vsSmallest));
      verdicts.push(
        `${engine.engine}: ${formatRatioNear(worst, SLOT_LIMIT_TARGET)} at worst (${verdict(worst <= SLOT_LIMIT_TARGET)})`,
      );
    }
  }
  return [
    '### Slot families: acquireSlot against the limit',
    '',
    `![acquireSlot latency against the limit](${CHART_FILES.slots})`,
    '',
    `Latency of one \`acquireSlot(owner, name, limit)\`, one caller, each family ${settings.fill * 100} % held by ` +
      'others (random slots), released after each call (not timed). One family per limit in one table per engine; ' +
      `${settings.rounds} interleaved rounds of ${settings.sliceMs} ms per limit; the ratio is the median of per-round ` +
      `ratios against limit ${formatCount(settings.limits[0]!)}. Each try offers the server at most 32 random ` +
      'candidate slots and takes the first free one (one statement on PostgreSQL and SQLite; a read, then a one-row ' +
      'INSERT on MariaDB), so neither the time nor the client’s memory grows with the limit.',
    '',
    markdownTable(
      [
        'engine',
        'limit',
        'median ms',
        'p99 ms',
        `vs limit ${formatCount(settings.limits[0]!)}`,
        'statements / call',
        'samples',
      ],
      rows,
    ),
    '',
    verdicts.length === 0
      ? ''
      : `Target (issue 13): at limits of 100,000 and 1,000,000, within ${formatRatio(SLOT_LIMIT_TARGET)} the latency ` +
        `at limit ${formatCount(settings.limits[0]!)}. ${verdicts.join('; ')}.`,
    '',
  ].join('\n');
}

function slotLimitsChart(result: SlotLimitsResult): string {
  const limits = result.settings.limits;
  const ticks = limits.map((limit) => ({ value: Math.log10(limit), label: shortLimit(limit) }));
  const panel = lineChart({
    title: 'acquireSlot latency, median',
    x: { label: 'slots in the family (log)', ticks, min: Math.log10(limits[0]!), max: Math.log10(limits.at(-1)!) },
    y: { label: 'ms', min: 0 },
    series: result.engines.map((engine) => ({
      label: engine.engine,
      points: summarizeSlotLimits(result, engine).map((s) => ({ x: Math.log10(s.limit), y: s.medianMs })),
    })),
    width: 420,
  });
  return svgDocument([panel], 'drydock-slotlock acquireSlot: see docs/benchmarks.md');
}

function shortLimit(limit: number): string {
  return limit >= 1e6 ? `${limit / 1e6}M` : limit >= 1e3 ? `${limit / 1e3}k` : String(limit);
}

// --- scale out: Galera ---------------------------------------------------------------

function galeraSection(result: GaleraResult, single: TableSizeResult | undefined): string {
  const { settings } = result;
  const header = [
    'case',
    ...GALERA_ARMS.map((label, index) => (index === 0 ? `${label} cycles/s` : `${label} cycles/s (vs 1 server)`)),
    ...GALERA_ARMS.map((label) => `${label}: retried / 1,000`),
    '3 nodes: certification failures / brute-force aborts per 1,000',
  ];
  const rows = result.cases.map((item) => [
    `K=${item.keys}, C=${item.callers}`,
    ...GALERA_ARMS.map((_, arm) =>
      arm === 0
        ? formatCount(galeraRate(item, arm))
        : `${formatCount(galeraRate(item, arm))} (${formatRatio(galeraRatio(item, arm))})`,
    ),
    ...GALERA_ARMS.map((_, arm) => contentionPerThousand(item.rounds.map((round) => round[arm]!)).toFixed(1)),
    perThousandCycles(item, 2),
  ]);
  const lines = [
    '## Scale out: a three-node Galera cluster',
    '',
    `![Cycles/s on one server and on a three-node Galera cluster](${CHART_FILES.galera})`,
    '',
    `The acquire+release cycle of the peers table (\`acquireLocks\` then \`releaseLocks\`, K keys, C callers with ` +
      `disjoint sets) on the single MariaDB server and on a three-node MariaDB Galera cluster (${result.version}, ` +
      '`scripts/galera.sh`), with the same callers all on node 1 or spread over the three nodes (caller i on node ' +
      `i mod 3). ${settings.rounds} interleaved rounds of ${settings.sliceMs} ms per arm. Every node runs on this ` +
      'same two-core machine, as the single server does: the figures show what synchronous replication and ' +
      'certification cost per cycle, not what three machines would give. "Retried / 1,000" counts the deadlocks and ' +
      'certification failures the package retried; the last column counts, on all three nodes, the writesets that ' +
      'failed certification and the local transactions a replicated writeset aborted (brute force), per 1,000 ' +
      'cycles of the three-node arm. The callers’ key sets are disjoint, and certification fails never: the aborts ' +
      'come from gap locks. Under REPEATABLE READ the duplicate check of an INSERT and a release (DELETE by owner) ' +
      'take next-key locks, which also hold the gap next to other owners’ rows; a replicated writeset of another ' +
      'node that needs such a gap cannot wait as a local transaction would, so it aborts the local one (Galera ' +
      'retries an aborted autocommit statement once itself, `wsrep_retry_autocommit`; the package retries the ' +
      'rest). Callers that stay on one node, as Galera’s own advice for hot tables has it, see none of this.',
    '',
    markdownTable(header, rows),
    '',
  ];
  const galeraSizes = result.tableSize;
  if (galeraSizes !== undefined) {
    const sizeRows: string[][] = [];
    for (const item of galeraSizes.cases) {
      const onCluster = summarizeTableSize(galeraSizes, item);
      const singleCase = single?.cases.find((other) => other.keys === item.keys);
      const onServer = single !== undefined && singleCase !== undefined ? summarizeTableSize(single, singleCase) : [];
      for (const size of onCluster) {
        const server = onServer.find((other) => other.size === size.size);
        sizeRows.push([
          `K=${item.keys}, ${formatCount(size.size)} held`,
          formatMs(size.medianMs),
          formatMs(size.p99Ms),
          formatRatio(size.medianRatio),
          server === undefined ? '-' : formatMs(server.medianMs),
        ]);
      }
    }
    lines.push(
      '### Table size on the cluster',
      '',
      `The table-size curve above, rerun on node 1 of the cluster (tables of ${galeraSizes.settings.sizes
        .map((size) => formatCount(size))
        .join(', ')} held locks, filled in ${galeraSizes.fillSeconds.toFixed(0)} s; ${galeraSizes.settings.rounds} ` +
        'interleaved rounds). Every commit waits for the other two nodes to certify it, so each acquisition costs ' +
        'more than on one server; what matters here is that the cost does not grow with the table.',
      '',
      markdownTable(
        ['case', 'acquire median ms', 'acquire p99 ms', 'median vs empty', '1 server: acquire median ms'],
        sizeRows,
      ),
      '',
    );
  }
  return lines.join('\n');
}

function perThousandCycles(item: GaleraCase, arm: number): string {
  const cycles = item.rounds.reduce((total, round) => total + round[arm]!.cycles, 0);
  const counts = item.cluster[arm]!;
  const per = (count: number): string => ((1000 * count) / Math.max(cycles, 1)).toFixed(1);
  return `${per(counts.certFailures)} / ${per(counts.bfAborts)}`;
}

function galeraChart(result: GaleraResult): string {
  const panels: Panel[] = [
    barChart({
      title: 'Acquire+release cycles/s',
      groups: result.cases.map((item) => `K=${item.keys}, C=${item.callers}`),
      series: GALERA_ARMS.map((label, arm) => ({
        label,
        values: result.cases.map((item) => galeraRate(item, arm)),
      })),
      y: { label: 'cycles/s', min: 0 },
      valueLabel: (value) => formatCount(value),
      width: 520,
    }),
  ];
  const sizes = result.tableSize;
  if (sizes !== undefined) {
    const ticks = sizes.settings.sizes.map((size, index) => ({ value: index, label: sizeLabel(size) }));
    panels.push(
      lineChart({
        title: 'acquireLocks latency on the cluster, median',
        x: { label: 'locks already held', ticks, min: 0, max: sizes.settings.sizes.length - 1 },
        y: { label: 'ms', min: 0 },
        series: sizes.cases.map((item) => ({
          label: `K=${item.keys}`,
          points: summarizeTableSize(sizes, item).map((s, index) => ({ x: index, y: s.medianMs })),
        })),
        width: 320,
      }),
    );
  }
  return svgDocument(
    panels,
    'drydock-slotlock on one MariaDB server and a three-node Galera cluster; see docs/benchmarks.md',
  );
}

// --- document ----------------------------------------------------------------------

function range(values: readonly number[]): string {
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low.toFixed(2) === high.toFixed(2) ? formatRatio(low) : `${low.toFixed(2)}x to ${formatRatio(high)}`;
}

/** The figures a reader wants first, every one computed from the tables below. */
function atAGlance(results: FullResults): string {
  const lines: string[] = [];
  const { peers, tableSize, batch, contention } = results;
  if (peers !== undefined) {
    peers.contenders.slice(1).forEach((label, offset) => {
      const ratios = peers.cases.map((item) => peerRatio(item, offset + 1));
      lines.push(`- **${label}** runs at ${range(ratios)} the package’s cycles/s across K and C (peer / package).`);
    });
  }
  if (tableSize !== undefined) {
    const largest = tableSize.settings.sizes[tableSize.settings.sizes.length - 1]!;
    const parts = tableSize.cases.map((item) => {
      const last = summarizeTableSize(tableSize, item).at(-1)!;
      return `K=${item.keys}: median ${formatRatio(last.medianRatio)}, p99 ${formatRatio(last.p99Ratio)}`;
    });
    lines.push(
      `- **Table size**: with ${formatCount(largest)} locks already held, acquisition latency is ${parts.join('; ')} ` +
        `the empty table’s (target <= ${formatRatio(TABLE_SIZE_TARGET)}).`,
    );
  }
  if (batch !== undefined) {
    const summary = summarizeBatch(batch);
    const first = summary[0]!;
    const last = summary[summary.length - 1]!;
    lines.push(
      `- **Batch size**: from ${formatCount(first.acquireLocksPerSecond)} locks/s one key at a time to ` +
        `${formatCount(last.acquireLocksPerSecond)} locks/s in batches of ${formatCount(last.size)} ` +
        `(${last.statements} INSERT${last.statements === 1 ? '' : 's'}).`,
    );
    const largest = batch.memory[batch.memory.length - 1];
    if (largest !== undefined) {
      const peak = peakRssDelta(largest);
      lines.push(
        `- **Memory**: a batch of ${formatCount(largest.size)} keys (${formatBytes(largest.keyBytes)} of keys) ` +
          `raised the peak RSS by ${formatBytes(peak.bytes)} (${(peak.bytes / largest.keyBytes).toFixed(1)}x the key bytes).`,
      );
    }
  }
  if (contention !== undefined) {
    const summary = summarizeContention(contention);
    lines.push(
      `- **Slot contention** (${contention.settings.slots} slots): ` +
        summary
          .map(
            (s) =>
              `N=${s.callers} ${formatCount(s.acquisitionsPerSecond)} acquisitions/s, ` +
              `${s.failedAttemptsPerAcquisition.toFixed(2)} failed attempts and ${s.rejectionsPerAcquisition.toFixed(2)} ` +
              `rejections per acquisition, slot CV ${s.slotCv.toFixed(3)}`,
          )
          .join('; ') +
        '.',
    );
  }
  if (results.slots !== undefined) {
    const parts = results.slots.engines.map((engine) => {
      const summary = summarizeSlotLimits(results.slots!, engine);
      const last = summary.at(-1)!;
      return `${engine.engine} ${formatMs(summary[0]!.medianMs)} ms at limit ${formatCount(summary[0]!.limit)}, ${formatMs(last.medianMs)} ms at ${formatCount(last.limit)} (${formatRatio(last.vsSmallest)})`;
    });
    lines.push(`- **Slot families** (acquireSlot, ${results.slots.settings.fill * 100} % held): ${parts.join('; ')}.`);
  }
  if (results.galera !== undefined) {
    const galera = results.galera;
    const parts = galera.cases.map(
      (item) =>
        `K=${item.keys}, C=${item.callers}: ${formatRatio(galeraRatio(item, 2))} on 3 nodes, ` +
        `${formatRatio(galeraRatio(item, 1))} on 1 node`,
    );
    lines.push(`- **Galera** (three nodes on this machine, cycles/s against one server): ${parts.join('; ')}.`);
  }
  return lines.length === 0 ? '' : ['## At a glance', '', ...lines, ''].join('\n');
}

function machineSection(results: FullResults): string {
  const { machine, versions } = results;
  return [
    '## Machine',
    '',
    markdownTable(
      ['', ''],
      [
        ['CPU', `${machine.cpu}, ${machine.cores} cores`],
        ['Memory', machine.memory],
        ['OS', machine.os],
        ['Node', machine.node],
        ['MariaDB', versions.mariadb],
        ['PostgreSQL', versions.postgres],
        ['Redis', versions.redis],
        ['Load average at start (1 min)', machine.loadAverage.toFixed(1)],
      ],
    ),
    '',
    'All servers ran on the same machine as the benchmark, shared with other jobs; absolute rates move with the ' +
      'machine and with the disk’s fsync latency (every commit waits for one), ratios much less.',
    '',
  ].join('\n');
}

export function renderMarkdown(results: FullResults): string {
  const sections = [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench:full\` on ${results.date.toISOString().replace(/\.\d+Z$/, 'Z')} in ` +
      `${(results.seconds / 60).toFixed(1)} minutes; rerun it rather than editing this file. The quick engine ` +
      'comparison (package against the raw driver on MariaDB, PostgreSQL and SQLite) is `npm run bench`.',
    '',
    '**Method.** Every comparison is a ratio from one interleaved run: one slice of each contender (or table size, ' +
      'batch size, caller count) per round, the order alternating (A, B, C, then C, B, A), for several rounds; each ' +
      'ratio is taken within one round and reported as the median over rounds. Rates shown next to ratios are medians ' +
      'over rounds.',
    '',
    atAGlance(results),
    machineSection(results),
  ];
  if (results.peers !== undefined) sections.push(peersSection(results.peers));
  if (
    results.tableSize !== undefined ||
    results.batch !== undefined ||
    results.contention !== undefined ||
    results.slots !== undefined
  ) {
    sections.push('## How cost grows', '');
  }
  if (results.tableSize !== undefined) sections.push(tableSizeSection(results.tableSize));
  if (results.batch !== undefined) sections.push(batchSection(results.batch));
  if (results.contention !== undefined) sections.push(contentionSection(results.contention));
  if (results.slots !== undefined) sections.push(slotLimitsSection(results.slots));
  if (results.galera !== undefined) sections.push(galeraSection(results.galera, results.tableSize));
  if (results.fairness !== undefined) sections.push(fairnessSection(results.fairness), '');
  return sections.join('\n');
}

/** Every chart of the results, by file name. */
export function renderCharts(results: FullResults): Record<string, string> {
  const charts: Record<string, string> = {};
  if (results.peers !== undefined) charts[CHART_FILES.peers] = peersChart(results.peers);
  if (results.tableSize !== undefined) charts[CHART_FILES.tableSize] = tableSizeChart(results.tableSize);
  if (results.batch !== undefined) charts[CHART_FILES.batch] = batchChart(results.batch);
  if (results.contention !== undefined) charts[CHART_FILES.contention] = contentionChart(results.contention);
  if (results.slots !== undefined) charts[CHART_FILES.slots] = slotLimitsChart(results.slots);
  if (results.galera !== undefined) charts[CHART_FILES.galera] = galeraChart(results.galera);
  return charts;
}
