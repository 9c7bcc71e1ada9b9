/**
 * Turns the figures of the last stress run (./figures.ts) into the "Figures of the last
 * run" section of docs/guarantees.md.
 *
 *   npx ts-node --transpile-only test/support/stress/figures-doc.ts           print the section
 *   npx ts-node --transpile-only test/support/stress/figures-doc.ts --write   replace it in the doc
 *
 * The section sits between the markers below; everything else in the doc is prose kept
 * by hand. Run `prettier --write docs/guarantees.md` afterwards (it aligns the tables).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { KillCallerResult, KillChunkedResult, ShutdownResult } from './faults';
import { FIGURES_FILE, readFigures, type FiguresFile } from './figures';
import type { runAllocation, runContention } from './scenarios';
import { sessionFiguresMarkdown } from './session-figures';
import { REPO_ROOT } from './servers';

export const DOC_FILE = path.join(REPO_ROOT, 'docs', 'guarantees.md');
export const BEGIN = '<!-- stress-figures:begin (npm run stress:figures) -->';
export const END = '<!-- stress-figures:end -->';

type Allocation = Awaited<ReturnType<typeof runAllocation>> & { cluster?: Array<Record<string, number>> };
type Contention = Awaited<ReturnType<typeof runContention>> & { cluster?: Array<Record<string, number>> };
type BadInput = Record<string, { runs: number; succeeded: number; rejected: Record<string, number> }>;

function section<T>(figures: FiguresFile, name: string): T | undefined {
  return figures.sections[name]?.figures as T | undefined;
}

function table(header: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(String).join(' | ')} |`),
  ].join('\n');
}

function retries(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? '0' : entries.map(([key, n]) => `${n} × ${key}`).join(', ');
}

function clusterSum(cluster: Array<Record<string, number>> | undefined, name: string): number | string {
  return cluster === undefined ? '–' : cluster.reduce((acc, node) => acc + (node[name] ?? 0), 0);
}

function allocationRows(figures: FiguresFile): Array<Array<string | number>> {
  const runs: Array<[string, string]> = [
    ['allocation.control', 'one server, **no slot locks** (control)'],
    ['allocation.locked', 'one server, `commitWithLocks`'],
    ['allocation.galera.control', 'Galera, 3 nodes, **no slot locks** (control)'],
    ['allocation.galera.locked', 'Galera, 3 nodes, `commitWithLocks`'],
  ];
  return runs.flatMap(([name, label]) => {
    const run = section<Allocation>(figures, name);
    if (run === undefined) return [];
    const t = run.totals;
    return [
      [
        label,
        `${t.processes} × ${t.allocatorsPerProcess}`,
        Object.keys(t.perBinding).length,
        (t.elapsedMs / 1000).toFixed(1),
        t.allocations,
        t.conflicts,
        `${t.doubleAllocationsSeen} / ${run.watcher.doubleAllocations}`,
        run.watcher.resourcesWithoutLock,
        t.escaped,
        t.unhandled,
        run.watcher.scans,
        t.minReusePerBinding,
        retries(t.retries),
      ],
    ];
  });
}

function contentionRows(figures: FiguresFile): Array<Array<string | number>> {
  const runs: Array<[string, string]> = [
    ['contention.single', 'one server'],
    ['contention.galera', 'Galera, 3 nodes'],
  ];
  return runs.flatMap(([name, label]) => {
    const run = section<Contention>(figures, name);
    if (run === undefined) return [];
    const t = run.totals;
    return [
      [
        label,
        `${t.processes} × ${t.loopsPerProcess}`,
        (t.elapsedMs / 1000).toFixed(1),
        t.attempts,
        t.successes,
        `${t.conflicts} (${t.conflictsContention})`,
        retries(t.retries),
        `${t.escaped} (${t.escapedContention})`,
        `${t.partialSets} / ${t.heldAfterConflict} / ${run.watcher.partialSets}`,
        run.lockRowsLeft.reduce((a, b) => a + b, 0),
        t.unhandled,
        `${clusterSum(run.cluster, 'wsrep_local_cert_failures')} / ${clusterSum(run.cluster, 'wsrep_local_bf_aborts')}`,
      ],
    ];
  });
}

function codeOf(outcome: { ok: boolean; error?: { code?: string; errno?: number; message: string } }): string {
  if (outcome.ok) return 'resolved';
  const code = [outcome.error?.code, outcome.error?.errno].filter((part) => part !== undefined).join(' ');
  return code !== '' ? `\`${code}\`` : `"${outcome.error?.message ?? 'error'}"`;
}

function faultRows(figures: FiguresFile): Array<Array<string | number>> {
  const rows: Array<Array<string | number>> = [];
  const killCaller = section<KillCallerResult>(figures, 'faults.killCaller');
  for (const each of killCaller?.cases ?? []) {
    rows.push([
      each.name,
      1,
      codeOf(each.outcome),
      each.outcome.slotLockException ? 'yes' : 'no',
      `none held; free after ${each.msUntilFree ?? '∞'} ms; next caller got all: ${each.nextCallerGotAll ? 'yes' : 'NO'}`,
      killCaller!.unhandled.length,
    ]);
  }
  const chunked = section<KillChunkedResult>(figures, 'faults.killChunked');
  if (chunked !== undefined) {
    const byKill = new Map<string, KillChunkedResult['rounds']>();
    for (const round of chunked.rounds) byKill.set(round.kill, [...(byKill.get(round.kill) ?? []), round]);
    for (const [kill, rounds] of byKill) {
      const all = rounds.filter((r) => r.heldAfter === r.keys).length;
      const none = rounds.filter((r) => r.heldAfter === 0).length;
      rows.push([
        `service's own connection, ${rounds[0]!.keys} keys in ${chunked.statementsPerAcquisition} INSERTs: ${kill}`,
        rounds.length,
        [...new Set(rounds.map((r) => codeOf(r.outcome)))].join(', '),
        rounds.some((r) => r.outcome.slotLockException) ? 'yes' : 'no',
        `all: ${all}, none: ${none}, partial: ${rounds.length - all - none}; rows in at the kill: ` +
          rounds.map((r) => r.rowsAtKill ?? '–').join(', '),
        chunked.unhandled.length,
      ]);
    }
  }
  for (const how of ['stop', 'crash'] as const) {
    const run = section<ShutdownResult>(figures, `faults.shutdown.${how}`);
    if (run === undefined) continue;
    const codes = [...new Set(run.whileDown.map(codeOf))].join(', ');
    const slowest = Math.max(...run.whileDown.map((c) => c.ms));
    rows.push([
      how === 'stop'
        ? 'MariaDB shut down (SIGTERM) under a live DataSource'
        : 'MariaDB killed (SIGKILL) under a live DataSource',
      1,
      codes,
      run.whileDown.some((c) => c.slotLockException) || run.load.during.slotLockExceptions > 0 ? 'yes' : 'no',
      `${run.whileDown.length} calls while down, slowest ${slowest} ms; load: ${run.load.during.failed} failed, ` +
        `slowest ${run.loadMaxMs} ms; down ${(run.downMs / 1000).toFixed(1)} s; after restart: ` +
        `${run.failuresAfterRestart} failures before the first success, ${run.load.after.ok} calls ok, ` +
        `locks taken before: ${run.locksAfterRestart}/${run.locksBefore}; partial sets: ${run.partialOwners.length}; ` +
        `whole sets kept by releases that failed while down: ${run.wholeSetsLeftByFailedReleases}; ` +
        `a chunked acquisition of ${run.inFlightChunked.keys} keys in flight (${run.inFlightChunked.rowsWhenStopped} ` +
        `rows in) got ${codeOf(run.inFlightChunked.outcome)} and holds ${run.inFlightChunked.heldAfterRestart} after the restart`,
      run.unhandled.length,
    ]);
  }
  return rows;
}

function badInputRows(figures: FiguresFile): Array<Array<string | number>> {
  const tally = section<BadInput>(figures, 'badInput') ?? {};
  return Object.entries(tally).map(([method, t]) => [
    method,
    t.runs,
    t.succeeded,
    Object.entries(t.rejected)
      .map(([argument, n]) => `${argument}: ${n}`)
      .join(', ') || '0',
  ]);
}

/** The section's markdown, markers included. */
export function renderFigures(figures: FiguresFile = readFigures()): string {
  const started = figures.startedAt === undefined ? undefined : new Date(figures.startedAt);
  const finished = figures.finishedAt === undefined ? undefined : new Date(figures.finishedAt);
  const when =
    started === undefined
      ? 'no run recorded'
      : `${started.toISOString().replace('T', ' ').slice(0, 16)} UTC` +
        (finished === undefined ? '' : `, ${Math.round((finished.getTime() - started.getTime()) / 1000)} s in all`);
  return [
    BEGIN,
    '',
    `Run of \`npm run test:stress\` on ${when} (MariaDB 10.11, two cores; written by \`npm run stress:figures\`` +
      ` from \`${path.relative(REPO_ROOT, FIGURES_FILE)}\`).`,
    '',
    '### Allocation: the seed’s test plan (`test/stress/allocation.test.ts`, `test/stress/galera.test.ts`)',
    '',
    table(
      [
        'run',
        'processes × allocators',
        'bindings',
        's',
        'allocations',
        'conflicts',
        'double allocations (allocators / watcher)',
        'resources without their lock (watcher)',
        'escaped errors',
        'unhandled',
        'watcher scans',
        'least reuse of a binding',
        'contention retries',
      ],
      allocationRows(figures),
    ),
    '',
    '### Contention (`test/stress/contention.test.ts`, `test/stress/galera.test.ts`)',
    '',
    table(
      [
        'run',
        'processes × callers',
        's',
        'attempts',
        'sets taken',
        'conflicts (of which contention)',
        'contention retries',
        'escaped errors (of which 1213/1205)',
        'partial sets (winners / losers / watcher)',
        'rows left',
        'unhandled',
        'Galera cert. failures / BF aborts',
      ],
      contentionRows(figures),
    ),
    '',
    '### Faults (`test/stress/faults.test.ts`)',
    '',
    table(
      ['fault', 'times', 'what the caller got', 'SlotLockException?', 'afterwards', 'unhandled'],
      faultRows(figures),
    ),
    '',
    '### Bad input, generated (`test/stress/bad-input.property.test.ts`)',
    '',
    table(
      ['call', 'runs', 'succeeded (stored byte-exact)', 'rejected before any query, by argument'],
      badInputRows(figures),
    ),
    '',
    ...sessionFiguresMarkdown(figures),
    END,
  ].join('\n');
}

/** Replaces the section between the markers in docs/guarantees.md. */
export function writeFiguresIntoDoc(): void {
  const doc = fs.readFileSync(DOC_FILE, 'utf8');
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin < 0 || end < begin) throw new Error(`${DOC_FILE} has no ${BEGIN} … ${END} section`);
  fs.writeFileSync(DOC_FILE, doc.slice(0, begin) + renderFigures() + doc.slice(end + END.length));
}

if (require.main === module) {
  if (process.argv.includes('--write')) {
    writeFiguresIntoDoc();
    console.log(`figures written into ${path.relative(REPO_ROOT, DOC_FILE)}`);
  } else {
    console.log(renderFigures());
  }
}
