import fc from 'fast-check';
import { redactUrl } from '../../src';
import { hidePasswords, rememberPassword } from '../../src/cli/hide-passwords';
import { MYSQL_SERVER_URL, testDatabaseName } from '../support/database';
import { killCli, linesOf, runCli, type CliResult } from '../support/cli';

/**
 * Passwords that break URL parsers, each piece marked LEAK so that any of it showing up
 * (whole, cut at the special character, or decoded) is caught.
 */
const PASSWORDS = [
  'LEAKa/LEAKb', // '/' ends the host for every parser: "root:LEAKa" looks like host and port
  'LEAKa%LEAKb', // a stray '%': decodeURIComponent threw "URI malformed"
  'LEAKa%E0%A4%LEAKb', // a '%' escape that is not UTF-8
  'LEAKa@LEAKb', // legal for parsers (the last '@' ends the password) but not for a naive regex
  'LEAKa:LEAKb',
  'LEAKa#LEAKb',
  'LEAKa?LEAKb',
  'LEAKa%2FLEAKb', // correctly encoded: its decoded form must not show either
];

/** Every subcommand that takes a URL, as a user would run it. */
const COMMANDS: ReadonlyArray<readonly string[]> = [
  ['migrate'],
  ['migrate', '--create-database'],
  ['migrate', '--revert'],
  ['acquire', '--owner', 'o', 'k'],
  ['release', '--owner', 'o'],
  ['locks', '--owner', 'o'],
  ['held', 'k'],
  ['run', '--lock', 'k', '--', 'true'],
  ['demo', '--allocators', '2', '--bindings', '1'],
];

/** Servers that fail in different places: nothing listens on port 1; MariaDB refuses a password root does not have. */
const SERVERS = ['mysql://root:{pw}@127.0.0.1:1/x', 'postgres://postgres:{pw}@127.0.0.1:1/x'];
const REFUSING = `${MYSQL_SERVER_URL.replace('://root@', '://root:{pw}@')}/${testDatabaseName('cli_passwords')}`;

function expectNoPassword(result: CliResult, context: unknown): void {
  const output = `${result.stdout}\n${result.stderr}`;
  expect({ context, leaked: /LEAK/i.test(output), output }).toEqual({ context, leaked: false, output });
}

afterEach(() => killCli());

describe('no password on stdout or stderr', () => {
  it.each(PASSWORDS)('password %j: no subcommand shows any of it, each says what is wrong in one line', async (pw) => {
    for (const server of SERVERS) {
      const url = server.replace('{pw}', pw);
      const results = await Promise.all(COMMANDS.map((command) => runCli([...command, '--url', url])));
      results.forEach((result, i) => {
        const context = { command: COMMANDS[i], url };
        expectNoPassword(result, context);
        expect({ context, code: result.code }).toEqual({ context, code: 1 });
        expect({ context, lines: linesOf(result.stderr).length }).toEqual({ context, lines: 1 });
        expect(result.stderr).not.toContain('unexpected error');
      });
    }
  });

  it('a URL the parsers cannot read says how to write the password, with the password hidden', async () => {
    const slash = await runCli(['held', 'k', '--url', 'mysql://root:s3cr/et@127.0.0.1:3306/db']);
    expect(slash.stderr).toBe(
      'slotlock: not a database URL: "mysql://root:***@127.0.0.1:3306/db" (expected mysql://user@host:port/database, ' +
        'postgres://…, or sqlite:path); percent-encode special characters of the user name and password ' +
        '(encodeURIComponent): / as %2F, % as %25, @ as %40, : as %3A, ? as %3F, # as %23; ' +
        'pass --url or set SLOTLOCK_DATABASE_URL\n',
    );
    const percent = await runCli(['held', 'k', '--url', 'mysql://root:s3%cret@127.0.0.1:3306/db']);
    expect(percent.stderr).toMatch(
      /^slotlock: the database URL "mysql:\/\/root:\*\*\*@127\.0\.0\.1:3306\/db" holds a % that does not start a valid %XX escape: percent-encode .* % as %25/,
    );
    // Parsers read "root:12" as host and port, and the rest as the path: an '@' there gives it away.
    const digits = await runCli(['held', 'k', '--url', 'mysql://root:12/34@127.0.0.1:3306/db']);
    expect(digits.stderr).toMatch(
      /^slotlock: the database URL "mysql:\/\/root:\*\*\*@127\.0\.0\.1:3306\/db" has an '@'/,
    );
  });

  it('SLOTLOCK_DATABASE_URL is hidden alike, stack traces (SLOTLOCK_DEBUG=1) included', async () => {
    for (const pw of PASSWORDS) {
      const result = await runCli(['locks', '--owner', 'o'], {
        env: { SLOTLOCK_DATABASE_URL: `mysql://root:${pw}@127.0.0.1:1/x`, SLOTLOCK_DEBUG: '1' },
      });
      expect(result.code).toBe(1);
      expectNoPassword(result, { pw });
    }
  });

  it('a server that refuses the password: the message names the URL, password hidden', async () => {
    const result = await runCli(['held', 'k', '--url', REFUSING.replace('{pw}', 'LEAKwrong%2Fpw')]);
    expect(result.code).toBe(1);
    expectNoPassword(result, 'refused');
    expect(result.stderr).toContain('the server refused the login of mysql://root:***@');
  });
});

describe("commander's usage errors quote what was typed, password hidden", () => {
  it.each([
    [
      'an option spelt in capitals',
      ['held', 'k', '--URL=mysql://root:LEAKsecret@127.0.0.1/db'],
      /unknown option '--URL=mysql:\/\/root:\*\*\*@127\.0\.0\.1\/db'/,
    ],
    [
      'an abbreviated option',
      ['held', 'k', '--ur=mysql://root:LEAKsecret@127.0.0.1/db'],
      /unknown option '--ur=mysql:\/\/root:\*\*\*@127\.0\.0\.1\/db'/,
    ],
    [
      'a URL given to --wait',
      ['acquire', '--owner', 'o', '--wait=mysql://root:LEAKsecret@h/db', 'k'],
      /option '--wait <seconds>' argument 'mysql:\/\/root:\*\*\*@h\/db' is invalid/,
    ],
    // A quote or a blank in the password ends a URL in running text; the argument still ends it.
    [
      'a password with a quote and a blank',
      ['held', 'k', "--URL=mysql://root:LEAK'a b@127.0.0.1/db"],
      /unknown option '--URL=/,
    ],
  ] as const)('%s: exit 2, the message says what is wrong, no password', async (_what, args, message) => {
    const result = await runCli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expectNoPassword(result, args);
  });
});

describe('redactUrl', () => {
  it('hides any password, however it is written, and keeps the rest of the URL as it was', () => {
    const userArb = fc.string({ minLength: 1 }).filter((user) => !/[:@]/.test(user));
    fc.assert(
      fc.property(userArb, fc.string(), (user, password) => {
        const url = `mysql://${user}:${password}@db.example:3306/locks`;
        expect(redactUrl(url)).toBe(`mysql://${user}:***@db.example:3306/locks`);
      }),
    );
  });

  it('hides password query parameters, and leaves URLs without a password and SQLite paths alone', () => {
    expect(redactUrl('postgres://u@h/db?sslmode=require&password=LEAK&x=1')).toBe(
      'postgres://u@h/db?sslmode=require&password=***&x=1',
    );
    expect(redactUrl('mysql://root@127.0.0.1:3306/db')).toBe('mysql://root@127.0.0.1:3306/db');
    expect(redactUrl('sqlite:/tmp/a:b@c.sqlite')).toBe('sqlite:/tmp/a:b@c.sqlite');
    expect(redactUrl('root:LEAK@host/db')).toBe('root:***@host/db');
  });
});

describe('hidePasswords', () => {
  it('hides the password of every URL in a text, and remembered passwords wherever they appear', () => {
    rememberPassword('mysql://root:LEAK%2Fpassword@h/db');
    expect(hidePasswords('driver said: LEAK/password rejected; LEAK%2Fpassword too')).toBe(
      'driver said: *** rejected; *** too',
    );
    expect(hidePasswords('connect to "postgres://u:p@h/db" failed')).toBe('connect to "postgres://u:***@h/db" failed');
  });
});
