import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** A process's group and the foreground group of its controlling terminal (-1 or 0: no terminal). */
export interface ProcessGroups {
  readonly pgrp: number;
  readonly tpgid: number;
}

/**
 * Whether this process has a controlling terminal, in the foreground or in a background
 * job (the terminal's foreground process group, `tpgid`, is then a process group, > 0).
 * Then the terminal and the shell's job control signal whole process groups (Ctrl-C,
 * a hangup, `kill %1`). False without one (a service, cron, CI, `docker run` without
 * `-t`, `ssh host cmd`), on Windows, or when it cannot be told.
 */
export function hasControllingTerminal(): boolean {
  if (process.platform === 'win32') return false;
  const groups = processGroupsFromProc() ?? processGroupsFromPs();
  return groups !== undefined && groups.tpgid > 0;
}

/** Linux: fields 5 (pgrp) and 8 (tpgid) of /proc/self/stat; `undefined` where there is no /proc. */
export function processGroupsFromProc(): ProcessGroups | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid pgrp session tty_nr tpgid ...": comm may hold blanks and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return parseGroups(fields[2], fields[5]);
}

/** Other Unixes (macOS, BSD): `ps -o pgid=,tpgid=` of this process; `undefined` when ps fails. */
export function processGroupsFromPs(): ProcessGroups | undefined {
  try {
    const output = execFileSync('ps', ['-o', 'pgid=,tpgid=', '-p', String(process.pid)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2000,
    });
    const [pgrp, tpgid] = output.trim().split(/\s+/);
    return parseGroups(pgrp, tpgid);
  } catch {
    return undefined;
  }
}

function parseGroups(pgrp: string | undefined, tpgid: string | undefined): ProcessGroups | undefined {
  const groups = { pgrp: Number(pgrp), tpgid: Number(tpgid) };
  return Number.isInteger(groups.pgrp) && Number.isInteger(groups.tpgid) && pgrp !== '' && tpgid !== ''
    ? groups
    : undefined;
}
