/**
 * The compatibility matrix (npm run test:compat): the package as users get it.
 *
 * `npm pack`s the package, then for each cell of cells.ts creates a throwaway consumer
 * project in a temp folder, installs the tarball with a plain `npm install` next to the
 * cell's pinned peers (no --legacy-peer-deps; a peer warning that names this package
 * fails the cell), and, once as a CommonJS project and once as an ESM one:
 * - type-checks the consumer sources against the installed types (tsc, nodenext);
 * - runs the contract smoke on MariaDB, PostgreSQL, and SQLite where the cell's TypeORM
 *   accepts better-sqlite3 12 (consumer/contract.smoke.ts);
 * - runs a Nest app over HTTP (consumer/nest.smoke.ts);
 * - runs every README example and checks what it prints (the ESM run is each example's
 *   second run on the same databases).
 * A last project installs the tarball alone and checks what a user without the optional
 * peers meets (`npx slotlock` with no better-sqlite3, `drydock-slotlock/nest` with no Nest).
 *
 * better-sqlite3 compiles from source here (about 2.5 minutes): the cells share this
 * checkout's build through a node_modules folder above them instead of compiling it six
 * times. Everything else each cell installs for itself (npm's cache makes repeats fast).
 *
 * Options: --cells a,b (a subset), --jobs N (cells at once, default 2), --keep (keep the
 * temp folder and databases; they are always kept when a cell fails).
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as semver from 'semver';
import { DataSource } from 'typeorm';
import { MYSQL_SERVER_URL, TEST_RUN_TAG } from '../support/database';
import { POSTGRES_SERVER_URL } from '../support/engines';
import { prepareReadmeDatabases, readmeExamples, type ReadmeDatabases } from '../support/readme-examples';
import { CELLS, type CompatCell } from './cells';

const ROOT = path.resolve(__dirname, '..', '..');
const CONSUMER = path.join(__dirname, 'consumer');
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const FLAVORS = ['cjs', 'esm'] as const;

/** What one step left behind. */
interface StepResult {
  readonly code: number | null;
  readonly output: string;
  readonly ms: number;
}

/** Runs a command, its output collected (never inherited: cells run side by side). */
function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<StepResult> {
  const started = Date.now();
  // An `undefined` in options.env unsets the variable.
  const env = Object.fromEntries(
    Object.entries({ ...process.env, npm_config_update_notifier: 'false', ...options.env }).filter(
      ([, value]) => value !== undefined,
    ),
  );
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 600_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

function seconds(ms: number): string {
  return ms >= 60_000
    ? `${Math.floor(ms / 60_000)}m${String(Math.round((ms % 60_000) / 1000)).padStart(2, '0')}s`
    : `${(ms / 1000).toFixed(1)}s`;
}

/** Database names of one cell: `slotlock_compat_<checkout tag>_<cell>_<use>`. */
function databaseName(cell: string, use: string): string {
  return `slotlock_compat_${TEST_RUN_TAG}_${cell}_${use}`;
}

async function withAdmin<T>(url: string, fn: (admin: DataSource) => Promise<T>): Promise<T> {
  const admin = new DataSource(url.startsWith('postgres') ? { type: 'postgres', url } : { type: 'mysql', url });
  await admin.initialize();
  try {
    return await fn(admin);
  } finally {
    await admin.destroy();
  }
}

async function recreateMariadb(names: readonly string[]): Promise<void> {
  await withAdmin(`${MYSQL_SERVER_URL}/mysql`, async (admin) => {
    for (const name of names) {
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.query(`CREATE DATABASE \`${name}\``);
    }
  });
}

async function recreatePostgres(names: readonly string[]): Promise<void> {
  await withAdmin(`${POSTGRES_SERVER_URL}/postgres`, async (admin) => {
    for (const name of names) {
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.query(`CREATE DATABASE "${name}"`);
    }
  });
}

/** Drops every database a run of this checkout made (both servers). */
async function dropCompatDatabases(): Promise<void> {
  const prefix = `slotlock_compat_${TEST_RUN_TAG}_`;
  await withAdmin(`${MYSQL_SERVER_URL}/mysql`, async (admin) => {
    const rows = (await admin.query('SELECT SCHEMA_NAME AS name FROM information_schema.SCHEMATA')) as Array<{
      name: string;
    }>;
    for (const { name } of rows) if (name.startsWith(prefix)) await admin.query(`DROP DATABASE \`${name}\``);
  });
  await withAdmin(`${POSTGRES_SERVER_URL}/postgres`, async (admin) => {
    const rows = (await admin.query('SELECT datname AS name FROM pg_database')) as Array<{ name: string }>;
    for (const { name } of rows) if (name.startsWith(prefix)) await admin.query(`DROP DATABASE "${name}" WITH (FORCE)`);
  });
}

/** One cell's outcome, for the summary. */
interface CellReport {
  readonly name: string;
  readonly versions: string;
  engines: string;
  readonly steps: Array<{ step: string; ok: boolean; ms: number }>;
  /** What typeorm-internals.probe.ts printed: one line per engine. */
  probe: string[];
  ms: number;
  failure?: string;
}

/** Lines of npm's output that warn about this package (a peer it does not accept, say). */
function warningsAboutPackage(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => /^npm (warn|WARN|error|ERR!)/.test(line) && line.includes('drydock-slotlock'));
}

class CellFailed extends Error {}

/** Runs one step of a cell, logs it, and throws CellFailed (with the step's output in the log) when it fails. */
async function step(
  report: CellReport,
  log: string,
  name: string,
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
  check: (result: StepResult) => string | undefined = (result) =>
    result.code === 0 ? undefined : `exit code ${String(result.code)}`,
): Promise<StepResult> {
  const result = await run(command, args, options);
  const problem = check(result);
  report.steps.push({ step: name, ok: problem === undefined, ms: result.ms });
  writeFileSync(
    log,
    `\n=== ${name}: ${problem ?? 'ok'} (${seconds(result.ms)})\n$ ${command} ${args.join(' ')}\n${result.output}`,
    {
      flag: 'a',
    },
  );
  console.log(
    `[${report.name}] ${name}: ${problem === undefined ? 'ok' : `FAILED (${problem})`} ${seconds(result.ms)}`,
  );
  if (problem !== undefined) {
    console.log(
      result.output
        .split('\n')
        .slice(-40)
        .map((line) => `[${report.name}]   ${line}`)
        .join('\n'),
    );
    throw new CellFailed(`${name}: ${problem}`);
  }
  return result;
}

/** The tsconfig of a consumer project: what `nest new` and `tsc --init` give today (nodenext, strict). */
function consumerTsconfig(): string {
  return JSON.stringify(
    {
      compilerOptions: {
        target: 'ES2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        lib: ['ES2023'],
        types: ['node'],
        strict: true,
        experimentalDecorators: true,
        emitDecoratorMetadata: true,
        esModuleInterop: true,
        skipLibCheck: true,
        rootDir: 'src',
        outDir: 'out',
      },
      include: ['src'],
    },
    null,
    2,
  );
}

async function runCell(
  cell: CompatCell,
  context: { work: string; tarball: string; sharedSqlite: string },
): Promise<CellReport> {
  const started = Date.now();
  const dir = path.join(context.work, 'cells', cell.name);
  const log = path.join(dir, 'cell.log');
  mkdirSync(dir, { recursive: true });
  const p = cell.packages;
  const report: CellReport = {
    name: cell.name,
    versions: [p.typeorm, p['@nestjs/core'], p['@nestjs/typeorm'], p['@nestjs/terminus']].join(' / '),
    engines: 'mariadb, postgres',
    steps: [],
    probe: [],
    ms: 0,
  };
  try {
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: `compat-${cell.name.replace(/_/g, '-')}`, version: '0.0.0', private: true }, null, 2),
    );
    const specs = Object.entries(cell.packages).map(([name, version]) => `${name}@${version}`);
    await step(
      report,
      log,
      'npm install',
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', context.tarball, ...specs],
      { cwd: dir },
      (result) => {
        if (result.code !== 0) return `exit code ${String(result.code)}`;
        const warnings = warningsAboutPackage(result.output);
        return warnings.length > 0 ? `npm warns about the package: ${warnings.join(' | ')}` : undefined;
      },
    );

    // SQLite where the install allows: this cell's TypeORM must accept the shared better-sqlite3.
    const typeormManifest = JSON.parse(
      readFileSync(path.join(dir, 'node_modules', 'typeorm', 'package.json'), 'utf8'),
    ) as {
      peerDependencies?: Record<string, string>;
    };
    const sqliteRange = typeormManifest.peerDependencies?.['better-sqlite3'] ?? '*';
    const sqlite = semver.satisfies(context.sharedSqlite, sqliteRange);
    report.engines = sqlite
      ? 'mariadb, postgres, sqlite'
      : `mariadb, postgres (no sqlite: typeorm ${p.typeorm} accepts better-sqlite3 ${sqliteRange}, not ${context.sharedSqlite})`;

    const contract = databaseName(cell.name, 'contract');
    const nest = databaseName(cell.name, 'nest');
    const nestEmpty = databaseName(cell.name, 'nest_empty');
    // The README's databases, made as the README says (npx slotlock migrate --create-database), in this project.
    const readme: ReadmeDatabases = await prepareReadmeDatabases(
      databaseName(cell.name, 'readme'),
      dir,
      ['npx', '--no', 'slotlock'],
      dir,
    );
    await recreateMariadb([nest, nestEmpty]);

    for (const flavor of FLAVORS) {
      const project = path.join(dir, flavor);
      mkdirSync(path.join(project, 'src'), { recursive: true });
      writeFileSync(
        path.join(project, 'package.json'),
        JSON.stringify({ private: true, type: flavor === 'esm' ? 'module' : 'commonjs' }),
      );
      writeFileSync(path.join(project, 'tsconfig.json'), consumerTsconfig());
      for (const file of ['contract.smoke.ts', 'nest.smoke.ts', 'typeorm-internals.probe.ts']) {
        cpSync(path.join(CONSUMER, file), path.join(project, 'src', file));
      }
      const examples = readmeExamples();
      examples.forEach((example, index) =>
        writeFileSync(path.join(project, 'src', `readme-${index + 1}.ts`), example.code),
      );
      await step(report, log, `${flavor}: tsc`, process.execPath, [TSC, '-p', project], { cwd: project });

      await recreateMariadb([contract]);
      await recreatePostgres([contract]);
      const sqliteFile = path.join(project, 'contract.sqlite');
      rmSync(sqliteFile, { force: true });
      const contractEnv = {
        COMPAT_MARIADB_URL: `${MYSQL_SERVER_URL}/${contract}`,
        COMPAT_POSTGRES_URL: `${POSTGRES_SERVER_URL}/${contract}`,
        COMPAT_SQLITE_URL: sqlite ? `sqlite:${sqliteFile}` : '',
      };
      await step(
        report,
        log,
        `${flavor}: contract`,
        process.execPath,
        ['--test-reporter=spec', 'out/contract.smoke.js'],
        {
          cwd: project,
          env: contractEnv,
        },
      );
      if (flavor === 'cjs') {
        const probe = await step(
          report,
          log,
          'typeorm internals probe',
          process.execPath,
          ['out/typeorm-internals.probe.js'],
          {
            cwd: project,
            env: contractEnv,
          },
        );
        report.probe = probe.output.trim().split('\n');
      }
      await step(report, log, `${flavor}: nest app`, process.execPath, ['--test-reporter=spec', 'out/nest.smoke.js'], {
        cwd: project,
        env: {
          COMPAT_MARIADB_URL: `${MYSQL_SERVER_URL}/${nest}`,
          COMPAT_MARIADB_EMPTY_URL: `${MYSQL_SERVER_URL}/${nestEmpty}`,
        },
      });
      // The ESM run is each example's second run on the same databases.
      for (const [index, example] of examples.entries()) {
        for (const { engine, expected } of example.runs) {
          if (engine === 'sqlite' && !sqlite) continue;
          await step(
            report,
            log,
            `${flavor}: README example ${index + 1} (${engine})`,
            process.execPath,
            [`out/readme-${index + 1}.js`],
            { cwd: project, env: readme.env[engine] },
            (result) =>
              result.code !== 0
                ? `exit code ${String(result.code)}`
                : expected.test(result.output)
                  ? undefined
                  : `printed ${JSON.stringify(result.output)}, expected ${String(expected)}`,
          );
        }
      }
    }
  } catch (error) {
    if (!(error instanceof CellFailed)) throw error;
    report.failure = error.message;
  }
  report.ms = Date.now() - started;
  return report;
}

/** The package alone, as `npm install drydock-slotlock` leaves it: no driver but what npm adds, no Nest. */
async function runBare(context: { work: string; tarball: string }): Promise<CellReport> {
  const started = Date.now();
  const dir = path.join(context.work, 'bare');
  const log = path.join(dir, 'cell.log');
  mkdirSync(path.join(dir, 'home'), { recursive: true });
  const report: CellReport = { name: 'bare', versions: 'the package alone', engines: '-', steps: [], probe: [], ms: 0 };
  try {
    writeFileSync(
      path.join(dir, 'package.json'),
      JSON.stringify({ name: 'compat-bare', version: '0.0.0', private: true }),
    );
    await step(
      report,
      log,
      'npm install',
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', context.tarball],
      { cwd: dir },
      (result) =>
        result.code === 0 && warningsAboutPackage(result.output).length === 0 ? undefined : 'install failed or warned',
    );
    const home = { HOME: path.join(dir, 'home'), XDG_DATA_HOME: undefined, SLOTLOCK_DATABASE_URL: undefined };
    await step(
      report,
      log,
      'npx slotlock without better-sqlite3',
      'npx',
      // migrate, which opens the embedded SQLite file (read-only commands stop earlier: no file yet).
      ['--no', 'slotlock', 'migrate'],
      { cwd: dir, env: home },
      (result) => {
        const lines = result.output.trim().split('\n');
        if (result.code !== 1) return `exit code ${String(result.code)}, expected 1`;
        if (lines.length !== 1) return `${lines.length} lines, expected one`;
        return /better-sqlite3/.test(lines[0]!) ? undefined : 'the line does not name better-sqlite3';
      },
    );
    await step(
      report,
      log,
      'drydock-slotlock/nest without NestJS',
      process.execPath,
      ['-e', "try { require('drydock-slotlock/nest') } catch (error) { console.log(error.message); process.exit(3) }"],
      { cwd: dir },
      (result) =>
        result.code === 3 && result.output.includes('npm install @nestjs/common @nestjs/core @nestjs/typeorm rxjs')
          ? undefined
          : 'not the one error naming what to install',
    );
  } catch (error) {
    if (!(error instanceof CellFailed)) throw error;
    report.failure = error.message;
  }
  report.ms = Date.now() - started;
  return report;
}

/** Runs `tasks` with at most `jobs` at once, results in order. */
async function pool<T>(tasks: ReadonlyArray<() => Promise<T>>, jobs: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  return results;
}

function option(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index === -1 ? undefined : process.argv[index + 1];
}

async function main(): Promise<void> {
  const started = Date.now();
  const only = option('--cells')?.split(',');
  const jobs = Number(option('--jobs') ?? '2');
  const keep = process.argv.includes('--keep');
  const cells = only === undefined ? CELLS : CELLS.filter((cell) => only.includes(cell.name));
  if (only !== undefined && cells.length !== only.length) throw new Error(`unknown cells in --cells ${only.join(',')}`);

  const work = mkdtempSync(path.join(tmpdir(), 'slotlock-compat-'));
  console.log(`== compatibility matrix: ${cells.length} cells, ${jobs} at a time, in ${work}`);
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.output}`);
  const json = packed.output.slice(packed.output.indexOf('[\n'));
  const tarball = path.join(work, (JSON.parse(json) as Array<{ filename: string }>)[0]!.filename);
  console.log(`packed ${path.basename(tarball)} (${seconds(packed.ms)})`);

  // The one better-sqlite3 build, visible to every cell from the folder above them.
  const shared = path.join(work, 'cells', 'node_modules');
  mkdirSync(shared, { recursive: true });
  symlinkSync(path.join(ROOT, 'node_modules', 'better-sqlite3'), path.join(shared, 'better-sqlite3'), 'dir');
  const sharedSqlite = (
    JSON.parse(readFileSync(path.join(ROOT, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;

  const context = { work, tarball, sharedSqlite };
  const reports = await pool([...cells.map((cell) => () => runCell(cell, context)), () => runBare(context)], jobs);

  const total = Date.now() - started;
  const failed = reports.filter((report) => report.failure !== undefined);
  console.log('\n== TypeORM internals the service reaches (informational, from typeorm-internals.probe.ts)');
  const byVersion = new Map<string, string[]>();
  for (const [index, report] of reports.entries()) {
    const version = index < cells.length ? cells[index]!.packages.typeorm! : undefined;
    if (version !== undefined && report.probe.length > 0 && !byVersion.has(version))
      byVersion.set(version, report.probe);
  }
  for (const [version, lines] of byVersion) for (const line of lines) console.log(`typeorm ${version} ${line}`);

  console.log('\n== compatibility matrix');
  console.log(
    [
      'cell'.padEnd(9),
      'typeorm / nest / @nestjs/typeorm / terminus'.padEnd(44),
      'time'.padStart(7),
      'result',
      ' engines',
    ].join(' '),
  );
  for (const report of reports) {
    console.log(
      [
        report.name.padEnd(9),
        report.versions.padEnd(44),
        seconds(report.ms).padStart(7),
        report.failure === undefined ? 'PASS  ' : 'FAIL  ',
        ` ${report.engines}${report.failure === undefined ? '' : ` -- ${report.failure}`}`,
      ].join(' '),
    );
  }
  if (failed.length === 0 && !keep) {
    await dropCompatDatabases();
    rmSync(work, { recursive: true, force: true });
  } else {
    console.log(
      `kept for inspection: ${work} (each cell's cell.log) and the databases slotlock_compat_${TEST_RUN_TAG}_*`,
    );
  }
  console.log(`compat: ${reports.length - failed.length} passed, ${failed.length} failed (total ${seconds(total)})`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
