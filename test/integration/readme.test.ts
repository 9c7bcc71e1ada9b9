import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { CELLS } from '../compat/cells';
import { testDatabaseName } from '../support/database';
import { prepareReadmeDatabases, readmeExamples, type ReadmeDatabases } from '../support/readme-examples';

const ROOT = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
const FLAVORS = ['cjs', 'esm'] as const;

/** What a consumer project has installed: the package (this checkout, built) and its peers. */
const INSTALLED = [
  'reflect-metadata',
  'typeorm',
  'mysql2',
  'pg',
  'better-sqlite3',
  'rxjs',
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@nestjs/typeorm',
  '@types/node',
];

describe('the README examples', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const examples = readmeExamples(readme);
  let project: string;
  let databases: ReadmeDatabases;

  beforeAll(async () => {
    // Two consumer projects, CommonJS and ESM, each compiling every example with tsc as written.
    project = mkdtempSync(path.join(tmpdir(), 'slotlock-readme-'));
    mkdirSync(path.join(project, 'node_modules', '@nestjs'), { recursive: true });
    mkdirSync(path.join(project, 'node_modules', '@types'), { recursive: true });
    symlinkSync(ROOT, path.join(project, 'node_modules', 'drydock-slotlock'), 'dir');
    for (const name of INSTALLED) {
      symlinkSync(path.join(ROOT, 'node_modules', name), path.join(project, 'node_modules', name), 'dir');
    }
    for (const flavor of FLAVORS) {
      const dir = path.join(project, flavor);
      mkdirSync(path.join(dir, 'src'), { recursive: true });
      writeFileSync(
        path.join(dir, 'package.json'),
        JSON.stringify({ private: true, type: flavor === 'esm' ? 'module' : 'commonjs' }),
      );
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'nodenext',
            moduleResolution: 'nodenext',
            lib: ['ES2023'],
            types: ['node'],
            strict: true,
            experimentalDecorators: true,
            emitDecoratorMetadata: true,
            skipLibCheck: true,
            rootDir: 'src',
            outDir: 'out',
          },
          include: ['src'],
        }),
      );
      examples.forEach((example, index) =>
        writeFileSync(path.join(dir, 'src', `example-${index + 1}.ts`), example.code),
      );
      await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
        cwd: dir,
      }).catch((error: { stdout?: string }) => {
        throw new Error(`the README examples do not compile as ${flavor}:\n${error.stdout ?? String(error)}`);
      });
    }
    // From nothing, as the README says: its databases are created by `slotlock migrate --create-database`.
    databases = await prepareReadmeDatabases(
      testDatabaseName('readme'),
      project,
      [process.execPath, path.join(ROOT, 'dist', 'cli', 'main.js')],
      project,
    );
  });
  afterAll(() => {
    rmSync(project, { recursive: true, force: true });
  });

  // CommonJS first, then ESM on the same databases: the ESM run is each example's second run.
  const runs = FLAVORS.flatMap((flavor) =>
    examples.flatMap((example, index) =>
      example.runs.map((expected) => [flavor, index + 1, expected.engine, expected.expected] as const),
    ),
  );

  test.each(runs)('%s: example %d runs on %s and prints what it says', async (flavor, number, engine, expected) => {
    const { stdout } = await run(process.execPath, [path.join(project, flavor, 'out', `example-${number}.js`)], {
      cwd: project,
      env: { ...process.env, ...databases.env[engine] },
      timeout: 60_000,
    });
    expect(stdout).toMatch(expected);
  });

  test('no example uses top-level await (CommonJS has none)', () => {
    for (const example of examples) expect(example.code).not.toMatch(/^await /m);
  });

  test('every link works on the registry page: anchors, or absolute URLs; docs/ links point at files the package ships', () => {
    const links = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!);
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((link) => !/^(#|https?:\/\/)/.test(link))).toEqual([]);
    const shipped = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
    for (const link of links.filter((target) => target.startsWith('https://unpkg.com/drydock-slotlock/'))) {
      const file = link.slice('https://unpkg.com/drydock-slotlock/'.length);
      expect(shipped.some((entry) => file === entry || file.startsWith(`${entry}/`))).toBe(true);
      expect(() => readFileSync(path.join(ROOT, file))).not.toThrow();
    }
  });

  test('every anchor names a heading of the README', () => {
    const slugs = [...readme.matchAll(/^#+ (.+)$/gm)].map((match) =>
      match[1]!
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    );
    const anchors = [...readme.matchAll(/\]\(#([^)]+)\)/g)].map((match) => match[1]!);
    expect(anchors.filter((anchor) => !slugs.includes(anchor))).toEqual([]);
  });

  test('the compatibility table lists the rows of the matrix', () => {
    const table = readme.slice(readme.indexOf('<!-- compat-cells'), readme.indexOf('<!-- /compat-cells -->'));
    const rows = table
      .split('\n')
      .filter((line) => line.startsWith('| ') && !line.startsWith('| TypeORM') && !line.startsWith('| ---'))
      .map((line) =>
        line
          .split('|')
          .slice(1, 5)
          .map((cell) => cell.trim()),
      );
    expect(rows).toEqual(
      CELLS.map((cell) => [
        cell.packages.typeorm,
        cell.packages['@nestjs/core'],
        cell.packages['@nestjs/typeorm'],
        cell.packages['@nestjs/terminus'],
      ]),
    );
  });
});

describe('the docs/ pages the package ships', () => {
  const shipped = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
  const pages = readdirSync(path.join(ROOT, 'docs')).filter((file) => file.endsWith('.md'));

  test.each(pages)('docs/%s links only to what the package ships (tests are named, not linked)', (page) => {
    const text = readFileSync(path.join(ROOT, 'docs', page), 'utf8');
    const relative = [...text.matchAll(/\]\(([^)\s]+)\)/g)]
      .map((match) => match[1]!)
      .filter((link) => !/^(#|https?:\/\/)/.test(link));
    const outside = relative.filter((link) => {
      const file = path.relative(ROOT, path.resolve(ROOT, 'docs', link.replace(/#.*$/, '')));
      return (
        !shipped.some((entry) => file === entry || file.startsWith(`${entry}/`)) || !existsSync(path.join(ROOT, file))
      );
    });
    expect(outside).toEqual([]);
  });
});
