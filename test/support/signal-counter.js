/**
 * A command for `slotlock run` tests: counts the signals it gets, and on the first one
 * cleans up slowly (as a real tool would) before it writes a report and exits with
 * EXIT_CODE. A second signal during the cleanup is counted, never obeyed, so the report
 * says exactly how many arrived. Prints "counter ready: …" once it listens, and
 * "counter got SIGxxx" for each signal.
 *
 * node signal-counter.js REPORT_FILE [CLEANUP_MS=500]
 * The report: {"counts": {"SIGINT": 1}, "pid", "pgrp", "tpgid", "tty"} (its process group and
 * the terminal's foreground group, from /proc/self/stat: Linux only; whether /dev/tty opens).
 */
/* global process, setTimeout */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const fs = require('node:fs');

const EXIT_CODE = 42;
const [reportFile, cleanupMs = '500'] = process.argv.slice(2);
const counts = {};
let cleaning = false;

function groups() {
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid: process.pid, pgrp: Number(fields[2]), tpgid: Number(fields[5]), tty: canOpenTty() };
}

/** Whether /dev/tty opens: the process has a controlling terminal (ssh, sudo and git prompt there). */
function canOpenTty() {
  try {
    fs.closeSync(fs.openSync('/dev/tty', 'r'));
    return true;
  } catch {
    return false;
  }
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']) {
  process.on(signal, () => {
    counts[signal] = (counts[signal] ?? 0) + 1;
    process.stdout.write(`counter got ${signal}\n`);
    if (cleaning) return;
    cleaning = true;
    setTimeout(() => {
      fs.writeFileSync(reportFile, JSON.stringify({ counts, ...groups() }));
      process.exit(EXIT_CODE);
    }, Number(cleanupMs));
  });
}
// Waits for signals, but not forever: a test that fails must not hang on it.
setTimeout(() => process.exit(3), 20_000);
process.stdout.write(`counter ready: pid ${process.pid}, parent ${process.ppid}\n`);
