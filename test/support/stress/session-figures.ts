/**
 * The figures of test/stress/sessions.test.ts (section "sessions" of the stress figures
 * file, ./figures.ts) as a Markdown table for docs/guarantees.md: one column per
 * target, one row per measured case. ./figures-doc.ts puts it into the doc.
 */
import type { FiguresFile } from './figures';

interface Reclaim {
  readonly ttlMs: number;
  readonly boundMs: number;
  readonly reclaimMs: number;
  readonly expiresAfterKillMs: number;
  readonly takenAfterExpiryMs: number;
}
interface Live {
  readonly ttlMs: number;
  readonly heldMs: number;
  readonly lost: boolean;
  readonly watch: { readonly samples: number; readonly otherHolder: readonly string[]; readonly minLeaseMs: number };
  readonly acquisitions: number;
  readonly heldKeyTries: number;
  readonly heldKeyWins: number;
  readonly deadPlanted: number;
  readonly reaped: { readonly sessions: number; readonly calls: number };
}
interface Lost {
  readonly ttlMs: number;
  readonly latencyMs: number;
}
interface Stopped {
  readonly ttlMs: number;
  readonly takenMs: number;
  readonly wokeMs: number;
}
interface Wake {
  readonly how: string;
  readonly rounds: number;
  readonly medianMs: number;
  readonly maxMs: number;
  readonly afterCommitMedianMs: number;
  readonly afterCommitMaxMs: number;
  readonly boundMs: number;
}
interface Aborts {
  readonly modes: Record<
    string,
    { runs: number; aborted: number; acquired: number; leftovers: number; rejectMaxMs: number }
  >;
  readonly rowsLeft: number;
}

/** What the test records: `{ [case]: { [target]: figure } }`. */
export interface SessionFigures {
  readonly reclaim?: Record<string, Reclaim>;
  readonly reclaimCli?: Record<string, Reclaim>;
  readonly live?: Record<string, Live>;
  readonly lost?: Record<string, Lost>;
  readonly stopped?: Record<string, Stopped>;
  readonly wake?: Record<string, Wake>;
  readonly abort?: Record<string, Aborts>;
}

const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const msText = (ms: number): string => `${Math.round(ms)} ms`;

function reclaimCell(figure: Reclaim | undefined): string {
  if (figure === undefined) return '–';
  return `${s(figure.reclaimMs)} (row expired at ${s(figure.expiresAfterKillMs)}, taken ${msText(figure.takenAfterExpiryMs)} later)`;
}

/** The table's lines, or none when the run recorded no session figures. */
export function sessionFiguresMarkdown(figures: FiguresFile): string[] {
  const recorded = figures.sections.sessions?.figures as SessionFigures | undefined;
  if (recorded === undefined) return [];
  const targets = [
    ...new Set(Object.values(recorded).flatMap((byTarget) => Object.keys(byTarget as Record<string, unknown>))),
  ];
  const row = (label: string, cell: (target: string) => string): string =>
    `| ${[label, ...targets.map(cell)].join(' | ')} |`;
  const any = <T>(byTarget: Record<string, T> | undefined): T | undefined =>
    byTarget === undefined ? undefined : Object.values(byTarget)[0];
  const reclaimTtl = any(recorded.reclaim)?.ttlMs ?? any(recorded.reclaimCli)?.ttlMs ?? 0;
  const bound = any(recorded.reclaim)?.boundMs ?? any(recorded.reclaimCli)?.boundMs ?? 0;
  const liveTtl = any(recorded.live)?.ttlMs ?? 0;
  const lostTtl = any(recorded.lost)?.ttlMs ?? 0;
  const stoppedTtl = any(recorded.stopped)?.ttlMs ?? 0;
  return [
    '### Sessions and waiting (`test/stress/sessions.test.ts`)',
    '',
    'Every holder, waiter and load is an OS process of its own; on Galera holders use node 1 and waiters node 2. ' +
      'Times are measured between processes on one clock.',
    '',
    `| case | ${targets.join(' | ')} |`,
    `| --- | ${targets.map(() => '---').join(' | ')} |`,
    row(
      `holder SIGKILLed (a process with \`openSession\`, ttl ${reclaimTtl / 1000} s): a waiting process had its lock after (bound ${s(bound)})`,
      (t) => reclaimCell(recorded.reclaim?.[t]),
    ),
    row(`\`slotlock run --ttl ${reclaimTtl / 1000}\` SIGKILLed: the same`, (t) =>
      reclaimCell(recorded.reclaimCli?.[t]),
    ),
    row(`live session (ttl ${liveTtl / 1000} s) held 10× its TTL under load: lost? its key taken by others?`, (t) => {
      const live = recorded.live?.[t];
      if (live === undefined) return '–';
      return (
        `${live.lost ? '**lost**' : 'not lost'}; ${live.heldKeyWins} of ${live.heldKeyTries} tries took its key, ` +
        `${live.watch.otherHolder.length} of ${live.watch.samples} looks saw another holder; least lease left ` +
        `${msText(live.watch.minLeaseMs)}; load: ${live.acquisitions} acquisitions, ${live.deadPlanted} dead sessions, ` +
        `${live.reaped.sessions} reaped by the reaper loop`
      );
    }),
    row(`session's row deleted by another process (ttl ${lostTtl / 1000} s): its signal fired after`, (t) => {
      const lost = recorded.lost?.[t];
      return lost === undefined ? '–' : msText(lost.latencyMs);
    }),
    row(
      `holder SIGSTOPped (ttl ${stoppedTtl / 1000} s): another process took its key after; on SIGCONT its signal fired within`,
      (t) => {
        const stopped = recorded.stopped?.[t];
        return stopped === undefined ? '–' : `${s(stopped.takenMs)}; ${msText(stopped.wokeMs)} (its own try refused)`;
      },
    ),
    row(
      'waiter woken by a release in another process: median / max from the release’s start (from its return)',
      (t) => {
        const wake = recorded.wake?.[t];
        if (wake === undefined) return '–';
        return (
          `${wake.how}: ${wake.medianMs.toFixed(1)} / ${wake.maxMs.toFixed(1)} ms (${wake.afterCommitMedianMs.toFixed(1)} / ` +
          `${wake.afterCommitMaxMs.toFixed(1)} ms) over ${wake.rounds}; bound ${wake.boundMs} ms`
        );
      },
    ),
    row('waits aborted at random moments (in flight or pausing): aborted / runs; rows left', (t) => {
      const aborts = recorded.abort?.[t];
      if (aborts === undefined) return '–';
      const modes = Object.values(aborts.modes);
      const runs = modes.reduce((n, m) => n + m.runs, 0);
      const aborted = modes.reduce((n, m) => n + m.aborted, 0);
      const slowest = Math.max(...modes.map((m) => m.rejectMaxMs));
      return `${aborted} / ${runs}; ${aborts.rowsLeft} (slowest rejection ${msText(slowest)} after the abort)`;
    }),
    '',
  ];
}
