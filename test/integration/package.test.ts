import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');

describe('the built package', () => {
  let project: string;

  beforeAll(() => {
    // `npm test` builds first (pretest); the package is used as another project would.
    project = mkdtempSync(path.join(tmpdir(), 'slotlock-consumer-'));
    mkdirSync(path.join(project, 'node_modules'));
    symlinkSync(ROOT, path.join(project, 'node_modules', 'drydock-slotlock'), 'dir');
    // A consumer installs the peers itself.
    for (const peer of ['reflect-metadata', 'typeorm', 'mysql2']) {
      symlinkSync(path.join(ROOT, 'node_modules', peer), path.join(project, 'node_modules', peer), 'dir');
    }
  });
  afterAll(() => {
    rmSync(project, { recursive: true, force: true });
  });

  function runInProject(code: string): string {
    return execFileSync(process.execPath, ['-e', code], { cwd: project, encoding: 'utf8' });
  }

  test("require('drydock-slotlock') gives the named exports, from dist/", () => {
    const output = runInProject(`
      require('reflect-metadata');
      const lib = require('drydock-slotlock');
      console.log(JSON.stringify({
        resolved: require.resolve('drydock-slotlock'),
        exports: Object.keys(lib).sort(),
        digest: lib.digestForIndex('dog'),
        migrations: lib.slotLockMigrations.length,
      }));
    `);
    const result = JSON.parse(output) as { resolved: string; exports: string[]; digest: string; migrations: number };
    expect(path.relative(ROOT, result.resolved)).toBe(path.join('dist', 'index.js'));
    expect(result.exports).toEqual(
      expect.arrayContaining([
        'DrydockSlotLock',
        'SlotLockService',
        'SlotLockException',
        'digestForIndex',
        'slotLockMigrations',
      ]),
    );
    expect(result.digest).toBe('Aliif7Qjd5ct');
    expect(result.migrations).toBe(1);
  });

  test('ships type declarations next to the code', () => {
    const output = runInProject(`console.log(require.resolve('drydock-slotlock/package.json'))`);
    const manifest = JSON.parse(readFileSync(output.trim(), 'utf8')) as {
      types: string;
      exports: Record<string, { types: string }>;
    };
    expect(manifest.types).toBe('dist/index.d.ts');
    expect(manifest.exports['.']!.types).toBe('./dist/index.d.ts');
    expect(() => require.resolve(path.join(ROOT, manifest.types))).not.toThrow();
  });

  describe('the tarball (npm pack)', () => {
    let files: string[];

    beforeAll(() => {
      const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: ROOT,
        encoding: 'utf8',
      });
      files = (JSON.parse(output) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((file) => file.path);
    });

    test('ships the Apache-2.0 LICENSE, the README and a package.json that says commonjs', () => {
      expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js']));
      const license = readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
      expect(license).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
      expect(license).toContain('END OF TERMS AND CONDITIONS');
      const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
        type: string;
        license: string;
      };
      expect(manifest).toMatchObject({ type: 'commonjs', license: 'Apache-2.0' });
    });

    test('every source map points at sources the tarball ships', () => {
      const maps = files.filter((file) => file.endsWith('.map'));
      expect(maps.length).toBeGreaterThan(0);
      const unshipped = maps.flatMap((map) => {
        const { sources } = JSON.parse(readFileSync(path.join(ROOT, map), 'utf8')) as { sources: string[] };
        return sources
          .map((source) => path.posix.normalize(path.posix.join(path.posix.dirname(map), source)))
          .filter((source) => !files.includes(source))
          .map((source) => `${map} -> ${source}`);
      });
      expect(unshipped).toEqual([]);
    });
  });

  describe('drydock-slotlock/nest without NestJS installed', () => {
    let bare: string;

    beforeAll(() => {
      // A copy, not a link: a link would find @nestjs in this checkout's node_modules.
      bare = mkdtempSync(path.join(tmpdir(), 'slotlock-no-nest-'));
      const installed = path.join(bare, 'node_modules', 'drydock-slotlock');
      mkdirSync(installed, { recursive: true });
      cpSync(path.join(ROOT, 'dist'), path.join(installed, 'dist'), { recursive: true });
      cpSync(path.join(ROOT, 'package.json'), path.join(installed, 'package.json'));
      for (const peer of ['reflect-metadata', 'typeorm']) {
        symlinkSync(path.join(ROOT, 'node_modules', peer), path.join(bare, 'node_modules', peer), 'dir');
      }
      writeFileSync(path.join(bare, 'package.json'), JSON.stringify({ name: 'bare', private: true }));
    });
    afterAll(() => {
      rmSync(bare, { recursive: true, force: true });
    });

    const expected =
      'drydock-slotlock/nest needs @nestjs/common, @nestjs/core, @nestjs/typeorm, rxjs, which are not installed: ' +
      'npm install @nestjs/common @nestjs/core @nestjs/typeorm rxjs (the root entry, drydock-slotlock, works without NestJS)';

    test.each([
      ['require', `try { require('drydock-slotlock/nest'); } catch (error) { console.log(error.message); }`, []],
      [
        'import',
        `import('drydock-slotlock/nest').catch((error) => console.log(error.message));`,
        ['--input-type=module'],
      ],
    ])('%s fails with one error naming every package to install', (_how, code, flags) => {
      const result = spawnSync(process.execPath, [...flags, '-e', code], { cwd: bare, encoding: 'utf8' });
      expect(result.stdout.trim()).toBe(expected);
    });

    test('the root entry still loads', () => {
      const output = execFileSync(
        process.execPath,
        ['-e', `require('reflect-metadata'); console.log(require('drydock-slotlock').digestForIndex('dog'))`],
        { cwd: bare, encoding: 'utf8' },
      );
      expect(output.trim()).toBe('Aliif7Qjd5ct');
    });

    test('a peer that only import can load is named with the version to install', () => {
      const typeormEsmOnly = path.join(bare, 'node_modules', '@nestjs', 'typeorm');
      mkdirSync(typeormEsmOnly, { recursive: true });
      // What @nestjs/typeorm 12.0.0 declares: an `import` condition and nothing for require().
      writeFileSync(
        path.join(typeormEsmOnly, 'package.json'),
        JSON.stringify({
          name: '@nestjs/typeorm',
          version: '12.0.0',
          type: 'module',
          exports: { '.': { import: './index.js' } },
        }),
      );
      writeFileSync(path.join(typeormEsmOnly, 'index.js'), 'export {};\n');
      try {
        const result = spawnSync(
          process.execPath,
          ['-e', `try { require('drydock-slotlock/nest'); } catch (error) { console.log(error.message); }`],
          { cwd: bare, encoding: 'utf8' },
        );
        expect(result.stdout.trim()).toBe(
          'drydock-slotlock/nest needs @nestjs/common, @nestjs/core, rxjs, which are not installed: ' +
            'npm install @nestjs/common @nestjs/core rxjs; and @nestjs/typeorm in a release that require() cannot load: ' +
            'npm install @nestjs/typeorm@latest (the root entry, drydock-slotlock, works without NestJS)',
        );
      } finally {
        rmSync(path.join(bare, 'node_modules', '@nestjs'), { recursive: true, force: true });
      }
    });
  });
});
