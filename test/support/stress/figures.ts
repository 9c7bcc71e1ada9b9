/**
 * The figures of the last stress run: each test merges its counts into one JSON file
 * (gitignored, under scratch/), which ./figures-doc.ts (`npm run stress:figures`) turns
 * into the figures section of docs/guarantees.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from './servers';

/** Where the figures go; override with SLOTLOCK_STRESS_FIGURES. */
export const FIGURES_FILE =
  process.env.SLOTLOCK_STRESS_FIGURES ?? path.join(REPO_ROOT, 'scratch', 'stress', 'last-run.json');

export interface FiguresFile {
  /** When the run started and finished (set by the suite's globalSetup and globalTeardown). */
  startedAt?: string;
  finishedAt?: string;
  /** Each test's figures, and when it wrote them. */
  readonly sections: Record<string, { readonly at: string; readonly figures: unknown }>;
}

export function readFigures(): FiguresFile {
  try {
    return JSON.parse(fs.readFileSync(FIGURES_FILE, 'utf8')) as FiguresFile;
  } catch {
    // No run yet, or a file from an older layout.
    return { sections: {} };
  }
}

function writeFigures(figures: FiguresFile): void {
  fs.mkdirSync(path.dirname(FIGURES_FILE), { recursive: true });
  fs.writeFileSync(FIGURES_FILE, `${JSON.stringify(figures, null, 2)}\n`);
}

/** Starts the figures of a new run (the previous run's are dropped). */
export function startFigures(): void {
  writeFigures({ startedAt: new Date().toISOString(), sections: {} });
}

/** Marks the run finished. */
export function finishFigures(): void {
  writeFigures({ ...readFigures(), finishedAt: new Date().toISOString() });
}

/** Replaces `section` in the figures file with `figures` (other sections are kept). */
export function recordFigures(section: string, figures: unknown): void {
  const current = readFigures();
  current.sections[section] = { at: new Date().toISOString(), figures };
  writeFigures(current);
}

/** Prints a titled block of figures (Jest shows it under the test file). */
export function report(title: string, figures: unknown): void {
  console.log(`${title}\n${JSON.stringify(figures, null, 2)}`);
}
