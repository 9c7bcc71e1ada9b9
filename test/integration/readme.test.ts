import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MYSQL_SERVER_URL, recreateDatabase, testDatabaseName, withAdmin } from '../support/database';
import { ENGINES } from '../support/engines';
import { phorgeDdl } from '../support/phorge';

const ROOT = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);

/** The ```ts blocks of the README, in order. */
function readmeExamples(): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

/**
 * An example as a runnable module: its imports stay on top, the rest runs in an async
 * function (the README uses top-level await, which CommonJS does not have).
 */
function asModule(example: string): string {
  const lines = example.split('\n');
  const imports: string[] = [];
  let i = 0;
  for (; i < lines.length; i += 1) {
    const line = lines[i]!;
    if (/^import\b/.test(line) || (imports.length > 0 && !imports.at(-1)!.includes(';'))) imports.push(line);
    else if (line.trim() !== '') break;
  }
  return [
    ...imports,
    'void (async () => {',
    ...lines.slice(i),
    '})().catch((error) => {',
    '  console.error(error);',
    '  process.exit(1);',
    '});',
  ].join('\n');
}

/** What each example must print, in README order (its comments say the same). */
const EXPECTED_OUTPUT: RegExp[] = [
  /Unable to acquire slot locks: "host\(7\)" \(owned by "PHID-DRYL-first"\)\.\n\{ 'host\(7\)': 'PHID-DRYL-first' \}\n/,
  /^PHID-DRYR-one\nundefined\n$/,
  /^1\n$/,
  /^false\n$/,
  /^postgres licence\(matlab\)\.slot\(\d\) 1\nbetter-sqlite3 licence\(matlab\)\.slot\(\d\) 1\n$/,
  /^$/,
];

const PHORGE_NAMESPACE = testDatabaseName('readme_phorge');

describe('the README examples', () => {
  let project: string;
  const examples = readmeExamples();

  beforeAll(async () => {
    // A consumer project: the package and its peers as another app installs them.
    project = mkdtempSync(path.join(tmpdir(), 'slotlock-readme-'));
    mkdirSync(path.join(project, 'node_modules', '@nestjs'), { recursive: true });
    symlinkSync(ROOT, path.join(project, 'node_modules', 'drydock-slotlock'), 'dir');
    for (const peer of [
      'reflect-metadata',
      'typeorm',
      'mysql2',
      'pg',
      'better-sqlite3',
      'rxjs',
      '@nestjs/common',
      '@nestjs/core',
      '@nestjs/typeorm',
    ]) {
      symlinkSync(path.join(ROOT, 'node_modules', peer), path.join(project, 'node_modules', peer), 'dir');
    }
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'commonjs',
          esModuleInterop: true,
          experimentalDecorators: true,
          emitDecoratorMetadata: true,
          strict: true,
        },
      }),
    );
    await recreateDatabase(testDatabaseName('readme'));
    // Phorge's own database, with the table as Phorge creates it, for the Phorge example.
    await withAdmin(async (admin) => {
      await admin.query(`DROP DATABASE IF EXISTS \`${PHORGE_NAMESPACE}_drydock\``);
      await admin.query(`CREATE DATABASE \`${PHORGE_NAMESPACE}_drydock\``);
      await admin.query(phorgeDdl(`\`${PHORGE_NAMESPACE}_drydock\`.drydock_slotlock`));
    });
    const postgres = ENGINES.find((engine) => engine.name === 'postgres');
    if (postgres !== undefined) await postgres.recreate('readme');
  });
  afterAll(() => {
    rmSync(project, { recursive: true, force: true });
  });

  test('are the ones this test knows', () => {
    expect(examples).toHaveLength(EXPECTED_OUTPUT.length);
  });

  test.each(EXPECTED_OUTPUT.map((expected, index) => [index + 1, expected] as const))(
    'example %d runs against the test servers and prints what it says',
    async (number, expected) => {
      const file = path.join(project, `example-${number}.ts`);
      writeFileSync(file, asModule(examples[number - 1]!));
      const { stdout } = await run(process.execPath, ['-r', 'ts-node/register/transpile-only', file], {
        cwd: project,
        env: {
          ...process.env,
          NODE_PATH: path.join(ROOT, 'node_modules'),
          TS_NODE_PROJECT: path.join(project, 'tsconfig.json'),
          DATABASE_URL: `${MYSQL_SERVER_URL}/${testDatabaseName('readme')}`,
          POSTGRES_URL: `postgres://postgres@127.0.0.1:5432/${testDatabaseName('readme')}`,
          SQLITE_FILE: path.join(project, 'locks.sqlite'),
          PHORGE_NAMESPACE,
        },
        timeout: 60_000,
      });
      expect(stdout).toMatch(expected);
    },
  );
});
