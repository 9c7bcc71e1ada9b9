import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { processGroupsFromProc, processGroupsFromPs } from '../../src/cli/controlling-terminal';
import { assertBuilt } from '../support/cli';

/** A node command that prints what the built hasControllingTerminal() says, quoted for sh. */
const PROBE = `'${process.execPath}' -e 'process.stdout.write(String(require(${JSON.stringify(
  path.join(__dirname, '..', '..', 'dist', 'cli', 'controlling-terminal.js'),
)}).hasControllingTerminal()))'`;

/** Runs `sh -c shell` under script(1): a new pseudo-terminal whose session leader is that shell. */
function inTerminal(shell: string): string {
  const result = spawnSync('script', ['-qec', shell, '/dev/null'], { encoding: 'utf8', stdio: 'pipe' });
  if (result.status !== 0) throw new Error(`script(1) failed (util-linux needed): ${result.stderr}`);
  return result.stdout.trim();
}

beforeAll(() => assertBuilt());

describe('hasControllingTerminal', () => {
  it('reads the same process group and terminal foreground group from /proc and from ps', () => {
    const fromProc = processGroupsFromProc();
    expect(fromProc).toEqual({ pgrp: expect.any(Number), tpgid: expect.any(Number) });
    expect(processGroupsFromPs()).toEqual(fromProc);
  });

  it('is true in the foreground of a terminal', () => {
    expect(inTerminal(`exec ${PROBE}`)).toBe('true');
  });

  it('is true in a background job of a terminal too (job control puts it in a group of its own, same session)', () => {
    // The shell may add its job report ("[1]+ Done ...") after the probe's answer.
    expect(inTerminal(`set -m; ${PROBE} & wait`)).toMatch(/^true\b/);
  });

  it('is false without a terminal (a session of its own, as a service runs)', () => {
    const result = spawnSync('setsid', ['sh', '-c', PROBE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(result.stdout).toBe('false');
  });
});
