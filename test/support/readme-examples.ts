import { execFile } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { MYSQL_SERVER_URL } from './database';
import { POSTGRES_SERVER_URL } from './engines';
import { phorgeDdl } from './phorge';

const ROOT = path.resolve(__dirname, '..', '..');
const execFileAsync = promisify(execFile);

/** The engines an example runs on; each run gets that engine's `SLOTLOCK_DATABASE_URL`. */
export type ReadmeEngine = 'mariadb' | 'postgres' | 'sqlite';

/** One ```ts block of the README and what it must print on each engine it runs on. */
export interface ReadmeExample {
  /** The block as written. */
  readonly code: string;
  /** What it prints, per engine (its comments say the same). */
  readonly runs: ReadonlyArray<{ readonly engine: ReadmeEngine; readonly expected: RegExp }>;
}

/** What each ```ts block of the README must print, in README order. */
const EXPECTED: ReadonlyArray<ReadmeExample['runs']> = [
  [
    {
      engine: 'mariadb',
      expected:
        /^true\nUnable to acquire slot locks: "host\(7\)" \(owned by "PHID-DRYL-first"\)\.\n\{ 'host\(7\)': 'PHID-DRYL-first' \}\nfalse\n1\n$/,
    },
  ],
  [{ engine: 'mariadb', expected: /^PHID-DRYR-one\nundefined\n$/ }],
  [{ engine: 'mariadb', expected: /^true\nfalse false\n1\ntrue\n$/ }],
  [
    { engine: 'mariadb', expected: /^true\nAbortError\n1\n$/ },
    { engine: 'postgres', expected: /^true\nAbortError\n1\n$/ },
    { engine: 'sqlite', expected: /^true\nAbortError\n1\n$/ },
  ],
  [
    {
      engine: 'mariadb',
      expected: new RegExp(
        '^' +
          [
            'POST /hosts/9/leases/PHID-DRYL-a 201 {"lease":"PHID-DRYL-a"}',
            'POST /hosts/9/leases/PHID-DRYL-b 409 {"statusCode":409,"message":"Unable to acquire slot locks: \\"host(9)\\" (owned by \\"PHID-DRYL-a\\").","lockMap":{"host(9)":"PHID-DRYL-a"}}',
            'DELETE /hosts/9/leases/PHID-DRYL-a 200 {"released":1}',
          ]
            .map((line) => line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
            .join('\\n') +
          '\\n$',
      ),
    },
  ],
  [{ engine: 'mariadb', expected: /^false\n$/ }],
  [
    { engine: 'postgres', expected: /^postgres licence\(matlab\)\.slot\(\d\) 1\n$/ },
    { engine: 'sqlite', expected: /^better-sqlite3 licence\(matlab\)\.slot\(\d\) 1\n$/ },
  ],
  [{ engine: 'mariadb', expected: /^$/ }],
];

/** The README's ```ts blocks with what each must print; throws if the README and this list disagree. */
export function readmeExamples(readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')): ReadmeExample[] {
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
  if (blocks.length !== EXPECTED.length) {
    throw new Error(
      `README.md has ${blocks.length} ts examples, test/support/readme-examples.ts expects ${EXPECTED.length}: ` +
        'add what a new example prints there',
    );
  }
  return blocks.map((code, index) => ({ code, runs: EXPECTED[index]! }));
}

/** The databases of one run of the README examples, and each engine's environment. */
export interface ReadmeDatabases {
  readonly env: Readonly<Record<ReadmeEngine, Readonly<Record<string, string>>>>;
}

/**
 * Sets up what the README tells a reader to set up, from nothing: the MariaDB and
 * PostgreSQL databases are dropped, then created with the README's own command
 * (`slotlock migrate --create-database`, run as `slotlock`), and the SQLite file removed.
 * Phorge's own database (the Phorge example's premise) is created with Phorge's DDL.
 *
 * @param name - the database name on both servers (the Phorge namespace is `<name>_ph`).
 * @param dir - where the SQLite file goes.
 * @param slotlock - how to run the `slotlock` command: the executable and its leading arguments.
 * @param cwd - where to run it.
 */
export async function prepareReadmeDatabases(
  name: string,
  dir: string,
  slotlock: readonly string[],
  cwd: string,
): Promise<ReadmeDatabases> {
  const phorgeNamespace = `${name}_ph`;
  const mysql = new DataSource({ type: 'mysql', url: `${MYSQL_SERVER_URL}/mysql` });
  await mysql.initialize();
  try {
    await mysql.query(`DROP DATABASE IF EXISTS \`${name}\``);
    await mysql.query(`DROP DATABASE IF EXISTS \`${phorgeNamespace}_drydock\``);
    await mysql.query(`CREATE DATABASE \`${phorgeNamespace}_drydock\``);
    await mysql.query(phorgeDdl(`\`${phorgeNamespace}_drydock\`.drydock_slotlock`));
  } finally {
    await mysql.destroy();
  }
  const postgres = new DataSource({ type: 'postgres', url: `${POSTGRES_SERVER_URL}/postgres` });
  await postgres.initialize();
  try {
    await postgres.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await postgres.destroy();
  }
  const sqliteFile = path.join(dir, 'readme-locks.sqlite');
  for (const suffix of ['', '-wal', '-shm']) rmSync(sqliteFile + suffix, { force: true });

  const env = {
    mariadb: { SLOTLOCK_DATABASE_URL: `${MYSQL_SERVER_URL}/${name}`, PHORGE_NAMESPACE: phorgeNamespace },
    postgres: { SLOTLOCK_DATABASE_URL: `${POSTGRES_SERVER_URL}/${name}` },
    sqlite: { SLOTLOCK_DATABASE_URL: `sqlite:${sqliteFile}` },
  };
  for (const engine of ['mariadb', 'postgres'] as const) {
    const [command, ...args] = slotlock;
    await execFileAsync(command!, [...args, 'migrate', '--create-database'], {
      cwd,
      env: { ...process.env, ...env[engine] },
    });
  }
  return { env };
}
