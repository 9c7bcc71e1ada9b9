import * as path from 'node:path';
import { killCli, runCli } from '../support/cli';

const SUBCOMMANDS = ['migrate', 'acquire', 'release', 'locks', 'held', 'run', 'reap', 'demo'];

afterEach(() => killCli());

describe('slotlock --help', () => {
  it('lists every subcommand and the exit codes', async () => {
    const result = await runCli(['--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    for (const name of SUBCOMMANDS) expect(result.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(result.stdout).toContain('Exit codes:');
    expect(result.stdout).toMatch(/^ {2}75 +held/m);
    expect(result.stdout).toMatch(/^ {2}2 +usage/m);
  });

  it.each(SUBCOMMANDS)('%s --help exits 0', async (name) => {
    const result = await runCli([name, '--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain(`Usage: slotlock ${name}`);
    expect(result.stdout).toContain('Exit codes:');
  });

  it('run --help says which signals reach the command, and how to run it under nohup', async () => {
    const help = (await runCli(['run', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toContain('With a terminal');
    expect(help).toContain("A signal sent to slotlock's pid alone does not reach the command");
    expect(help).toContain('Without a terminal');
    expect(help).toContain('slotlock run --lock KEY -- nohup CMD');
  });

  it('run --help names the defaults of --ttl and --wait, the lost exit code, and says acquire stays durable', async () => {
    const help = (await runCli(['run', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--ttl <seconds> .*\(default: 30\)/);
    expect(help).toMatch(/--wait <seconds> .*\(default: 0\)/);
    expect(help).toContain('--ttl 0 holds durable locks');
    expect(help).toContain('76 session lost');
    expect(help).toContain('`acquire` and `release` stay durable (no session)');
    const acquire = (await runCli(['acquire', '--help'])).stdout.replace(/\s+/g, ' ');
    expect(acquire).toMatch(/--wait <seconds> .*\(default: 0\)/);
    expect(acquire).toContain('no session, no TTL');
    const main = await runCli(['--help']);
    expect(main.stdout).toMatch(/^ {2}76 +lost \(run only\)/m);
  });

  it('help <command> and --version exit 0; no command at all is a usage error', async () => {
    expect((await runCli(['help', 'run'])).code).toBe(0);
    const version = await runCli(['--version']);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+/);
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain('Usage: slotlock');
  });

  it.each(['', ...SUBCOMMANDS])(
    '`slotlock %s --help` names the embedded SQLite file as the default database, never a MySQL URL',
    async (name) => {
      const dataHome = path.join(path.sep, 'xdg-data-home-of-this-test');
      const command = name === '' ? [] : [name];
      const result = await runCli([...command, '--help'], { env: { XDG_DATA_HOME: dataHome } });
      expect(result.code).toBe(0);
      // Commander wraps long lines: compare the words, not the layout.
      expect(result.stdout.replace(/\s+/g, ' ')).toContain(
        `else the embedded SQLite file sqlite:${path.join(dataHome, 'drydock-slotlock', 'slotlock.sqlite')}`,
      );
      expect(result.stdout).not.toMatch(/mysql:\/\/root@/);
    },
  );
});
