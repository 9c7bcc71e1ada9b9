import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
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
});
