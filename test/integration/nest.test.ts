import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { Injectable, Module, type ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { SlotLockException, dataSourceOptionsFromUrl, slotLockMigrations } from '../../src';
import {
  getSlotLockOptionsToken,
  getSlotLockServiceToken,
  InjectSlotLockService,
  SlotLockModule,
  SlotLockService,
  type SlotLockOptionsFactory,
  type SlotLockServiceOptions,
} from '../../src/nest';
import { allRows, dataSourceOptions, recreateDatabase, testDatabaseName, withAdmin } from '../support/database';
import { SQLITE_TEST_DIR } from '../support/engines';

const ROOT = path.resolve(__dirname, '..', '..');

/** How many file descriptors of this process point at `file` (Linux: /proc/self/fd). */
function openDescriptorsOf(file: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false; // closed while listing
    }
  }).length;
}
const DB = testDatabaseName('nest');
const DB_A = testDatabaseName('nest_a');
const DB_B = testDatabaseName('nest_b');

const OWNER = 'PHID-DRYL-nestowner000000000';
const OTHER = 'PHID-DRYL-nestother000000000';

/** TypeOrmModule options on one test database, running the package's migrations at boot. */
function typeOrmOptions(database: string, name?: string): TypeOrmModuleOptions {
  return {
    ...dataSourceOptions(database),
    ...(name === undefined ? {} : { name }),
    migrations: [...slotLockMigrations],
    migrationsRun: true,
    retryAttempts: 0, // fail at once rather than retry for 30 s
  };
}

/** Connections the server has open on `database`. */
async function connectionsTo(database: string): Promise<number> {
  return withAdmin(async (admin) => {
    const rows = (await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [
      database,
    ])) as Array<{ n: string | number }>;
    return Number(rows[0]!.n);
  });
}

/** Empties the lock table of `database`, once a boot has migrated it. */
async function clearLocks(database: string): Promise<void> {
  await withAdmin(async (admin) => {
    const tables = (await admin.query(`SHOW TABLES FROM \`${database}\` LIKE 'drydock_slotlock'`)) as unknown[];
    if (tables.length > 0) await admin.query(`DELETE FROM \`${database}\`.drydock_slotlock`);
  });
}

/** The lock rows as [owner, key] pairs, sorted (the service inserts in lock-index order). */
async function heldLocks(dataSource: DataSource): Promise<string[][]> {
  return (await allRows(dataSource)).map((row) => [row.ownerPHID, row.lockKey]).sort();
}

async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

@Injectable()
class LeaseAllocator {
  constructor(readonly slotLocks: SlotLockService) {}

  async allocate(leasePHID: string, hostId: number): Promise<void> {
    await this.slotLocks.acquireLocks(leasePHID, [`host(${hostId})`, 'licence.slot(0)']);
  }

  async release(leasePHID: string): Promise<number> {
    return this.slotLocks.releaseLocks(leasePHID);
  }
}

@Injectable()
class TwoSites {
  constructor(
    @InjectSlotLockService('a') readonly a: SlotLockService,
    @InjectSlotLockService('b') readonly b: SlotLockService,
  ) {}
}

@Injectable()
class SlotLockConfig {
  readonly maxKeyBytes = 200;
  readonly attempts = 3;
}

@Module({ providers: [SlotLockConfig], exports: [SlotLockConfig] })
class SlotLockConfigModule {}

@Injectable()
class ClassOptions implements SlotLockOptionsFactory {
  createSlotLockOptions(): SlotLockServiceOptions {
    return { retry: { baseDelayMs: 1, maxDelayMs: 20 } };
  }
}

@Injectable()
class FeatureService {
  constructor(readonly slotLocks: SlotLockService) {}
}

@Module({ providers: [FeatureService], exports: [FeatureService] })
class FeatureModule {}

describe('drydock-slotlock/nest', () => {
  const open = new Set<TestingModule>();

  async function boot(metadata: ModuleMetadata): Promise<TestingModule> {
    const app = await Test.createTestingModule(metadata).compile();
    open.add(app);
    await app.init();
    return app;
  }

  async function close(app: TestingModule): Promise<void> {
    open.delete(app);
    await app.close();
  }

  beforeAll(async () => {
    for (const database of [DB, DB_A, DB_B]) await recreateDatabase(database);
  });
  beforeEach(async () => {
    for (const database of [DB, DB_A, DB_B]) await clearLocks(database);
  });
  afterEach(async () => {
    for (const app of [...open]) await close(app);
  });

  describe('tokens', () => {
    test('the default data source uses the class, a named one a string', () => {
      expect(getSlotLockServiceToken()).toBe(SlotLockService);
      expect(getSlotLockServiceToken('default')).toBe(SlotLockService);
      expect(getSlotLockServiceToken('a')).toBe('SlotLockService:a');
      expect(getSlotLockOptionsToken()).toBe('SlotLockModuleOptions');
      expect(getSlotLockOptionsToken('a')).toBe('SlotLockModuleOptions:a');
      expect(() => getSlotLockServiceToken('')).toThrow(TypeError);
    });

    test('bad module options are refused when the module is declared', () => {
      expect(() => SlotLockModule.forRoot({ dataSourceName: '' })).toThrow(/options\.dataSourceName/);
      expect(() => SlotLockModule.forRoot({ isGlobal: 'yes' as unknown as boolean })).toThrow(/options\.isGlobal/);
      expect(() => SlotLockModule.forRootAsync({})).toThrow(/exactly one of useFactory, useClass or useExisting/);
      expect(() => SlotLockModule.forRootAsync({ useFactory: () => ({}), useClass: ClassOptions })).toThrow(
        /exactly one/,
      );
    });
  });

  test('forRoot on the default data source: a provider gets the service by its type, and locks go through it', async () => {
    const app = await boot({
      imports: [TypeOrmModule.forRoot(typeOrmOptions(DB)), SlotLockModule.forRoot()],
      providers: [LeaseAllocator],
    });
    const allocator = app.get(LeaseAllocator);
    const dataSource = app.get(DataSource);
    expect(allocator.slotLocks).toBeInstanceOf(SlotLockService);
    expect(app.get(SlotLockService)).toBe(allocator.slotLocks);
    expect(allocator.slotLocks.options).toEqual({
      tableName: 'drydock_slotlock',
      sessionTableName: 'drydock_slotlock_session',
      maxKeyBytes: 65535,
      retry: { attempts: 10, baseDelayMs: 5, maxDelayMs: 250 },
      wait: { baseDelayMs: 10, maxDelayMs: 100 },
    });
    expect(app.get(getSlotLockOptionsToken())).toEqual({});

    await allocator.allocate(OWNER, 7);
    expect(await heldLocks(dataSource)).toEqual([
      [OWNER, 'host(7)'],
      [OWNER, 'licence.slot(0)'],
    ]);
    const conflict = await allocator.allocate(OTHER, 7).catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(SlotLockException);
    expect((conflict as SlotLockException).getLockMap()).toEqual({ 'host(7)': OWNER, 'licence.slot(0)': OWNER });

    await expect(allocator.release(OWNER)).resolves.toBe(2);
    expect(await allRows(dataSource)).toEqual([]);
  });

  test('forRoot passes the service options through', async () => {
    const app = await boot({
      imports: [TypeOrmModule.forRoot(typeOrmOptions(DB)), SlotLockModule.forRoot({ maxKeyBytes: 50 })],
    });
    expect(app.get(SlotLockService).options.maxKeyBytes).toBe(50);
    expect(app.get(getSlotLockOptionsToken())).toEqual({ maxKeyBytes: 50 });
  });

  test('forRootAsync with imports, inject and useFactory: the service carries the options it returns', async () => {
    const app = await boot({
      imports: [
        TypeOrmModule.forRoot(typeOrmOptions(DB)),
        SlotLockModule.forRootAsync({
          imports: [SlotLockConfigModule],
          inject: [SlotLockConfig],
          useFactory: async (config: SlotLockConfig) => {
            await new Promise((resolve) => setImmediate(resolve));
            return { maxKeyBytes: config.maxKeyBytes, retry: { attempts: config.attempts } };
          },
        }),
      ],
      providers: [LeaseAllocator],
    });
    const service = app.get(LeaseAllocator).slotLocks;
    expect(service).toBe(app.get(SlotLockService));
    expect(service.options).toEqual({
      tableName: 'drydock_slotlock',
      sessionTableName: 'drydock_slotlock_session',
      maxKeyBytes: 200,
      retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 250 },
      wait: { baseDelayMs: 10, maxDelayMs: 100 },
    });
    await expect(service.acquireLocks(OWNER, ['x'.repeat(201)])).rejects.toThrow(RangeError);
    await service.acquireLocks(OWNER, ['x'.repeat(200)]);
    await expect(service.releaseLocks(OWNER)).resolves.toBe(1);
  });

  test('forRootAsync with useClass', async () => {
    const app = await boot({
      imports: [TypeOrmModule.forRoot(typeOrmOptions(DB)), SlotLockModule.forRootAsync({ useClass: ClassOptions })],
    });
    expect(app.get(SlotLockService).options.retry).toEqual({ attempts: 10, baseDelayMs: 1, maxDelayMs: 20 });
  });

  test('forRootAsync refuses dataSourceName inside what the factory returns', async () => {
    await expect(
      Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeOrmOptions(DB), manualInitialization: true }),
          SlotLockModule.forRootAsync({ useFactory: () => ({ dataSourceName: 'a' }) as SlotLockServiceOptions }),
        ],
      }).compile(),
    ).rejects.toThrow(/dataSourceName goes next to useFactory/);
  });

  test('two named data sources: each service locks in its own database, and they stay apart', async () => {
    const app = await boot({
      imports: [
        TypeOrmModule.forRoot(typeOrmOptions(DB_A, 'a')),
        TypeOrmModule.forRoot(typeOrmOptions(DB_B, 'b')),
        SlotLockModule.forRoot({ dataSourceName: 'a' }),
        SlotLockModule.forRoot({ dataSourceName: 'b', maxKeyBytes: 100 }),
      ],
      providers: [TwoSites],
    });
    const sites = app.get(TwoSites);
    const dataSourceA = app.get<DataSource>(getDataSourceToken('a'));
    const dataSourceB = app.get<DataSource>(getDataSourceToken('b'));
    expect(sites.a).toBeInstanceOf(SlotLockService);
    expect(sites.b).toBeInstanceOf(SlotLockService);
    expect(sites.a).not.toBe(sites.b);
    expect(app.get(getSlotLockServiceToken('a'))).toBe(sites.a);
    expect([sites.a.options.maxKeyBytes, sites.b.options.maxKeyBytes]).toEqual([65535, 100]);
    // Neither named module registers the default token.
    expect(() => app.get(SlotLockService, { strict: false })).toThrow();

    await sites.a.acquireLocks(OWNER, ['host(1)']);
    expect(await heldLocks(dataSourceA)).toEqual([[OWNER, 'host(1)']]);
    expect(await allRows(dataSourceB)).toEqual([]);

    // The same key, held by another owner in b: no conflict with a.
    await sites.b.acquireLocks(OTHER, ['host(1)']);
    expect(await heldLocks(dataSourceB)).toEqual([[OTHER, 'host(1)']]);
    expect((await allRows(dataSourceA)).map((row) => row.ownerPHID)).toEqual([OWNER]);

    // Within each database the lock is still exclusive.
    const inA = await sites.a.acquireLocks(OTHER, ['host(1)']).catch((error: unknown) => error);
    expect((inA as SlotLockException).getLockMap()).toEqual({ 'host(1)': OWNER });
    const inB = await sites.b.acquireLocks(OWNER, ['host(1)']).catch((error: unknown) => error);
    expect((inB as SlotLockException).getLockMap()).toEqual({ 'host(1)': OTHER });

    await expect(sites.a.releaseLocks(OWNER)).resolves.toBe(1);
    await expect(sites.b.releaseLocks(OTHER)).resolves.toBe(1);
  });

  test('isGlobal: a feature module that does not import SlotLockModule injects the service', async () => {
    const app = await boot({
      imports: [TypeOrmModule.forRoot(typeOrmOptions(DB)), SlotLockModule.forRoot({ isGlobal: true }), FeatureModule],
    });
    const feature = app.get(FeatureService);
    expect(feature.slotLocks).toBe(app.get(SlotLockService));
    await feature.slotLocks.acquireLocks(OWNER, ['feature(1)']);
    await expect(feature.slotLocks.releaseLocks(OWNER)).resolves.toBe(1);
  });

  test('without isGlobal the feature module cannot see the service', async () => {
    await expect(
      Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot({ ...typeOrmOptions(DB), manualInitialization: true }),
          SlotLockModule.forRoot(),
          FeatureModule,
        ],
      }).compile(),
    ).rejects.toThrow(/FeatureService/);
  });

  test('app.close() closes the data sources and their connections', async () => {
    const app = await boot({
      imports: [
        TypeOrmModule.forRoot(typeOrmOptions(DB_A, 'a')),
        TypeOrmModule.forRoot(typeOrmOptions(DB_B, 'b')),
        SlotLockModule.forRoot({ dataSourceName: 'a' }),
        SlotLockModule.forRoot({ dataSourceName: 'b' }),
      ],
      providers: [TwoSites],
    });
    const sites = app.get(TwoSites);
    const dataSources = [app.get<DataSource>(getDataSourceToken('a')), app.get<DataSource>(getDataSourceToken('b'))];
    await sites.a.withLocks(OWNER, ['shutdown(1)'], () => undefined);
    await sites.b.withLocks(OWNER, ['shutdown(1)'], () => undefined);
    expect(dataSources.map((dataSource) => dataSource.isInitialized)).toEqual([true, true]);
    expect(await connectionsTo(DB_A)).toBeGreaterThan(0);
    expect(await connectionsTo(DB_B)).toBeGreaterThan(0);

    await close(app);

    expect(dataSources.map((dataSource) => dataSource.isInitialized)).toEqual([false, false]);
    expect(
      await eventually(
        () => connectionsTo(DB_A),
        (count) => count === 0,
      ),
    ).toBe(0);
    expect(
      await eventually(
        () => connectionsTo(DB_B),
        (count) => count === 0,
      ),
    ).toBe(0);
  });

  test('app.close() closes the service’s own SQLite connection before the data source', async () => {
    const file = path.join(SQLITE_TEST_DIR, `${testDatabaseName('nest_sqlite')}.sqlite`);
    mkdirSync(SQLITE_TEST_DIR, { recursive: true });
    rmSync(file, { force: true });
    const app = await boot({
      imports: [
        TypeOrmModule.forRoot({ ...dataSourceOptionsFromUrl(`sqlite:${file}`), migrationsRun: true }),
        SlotLockModule.forRoot(),
      ],
      providers: [LeaseAllocator],
    });
    await app.get(LeaseAllocator).allocate('PHID-SQLITE', 1);
    // The app's connection and the service's own each hold the file open.
    expect(openDescriptorsOf(file)).toBe(2);
    await close(app);
    expect(openDescriptorsOf(file)).toBe(0);
  });

  test('the root entry does not load @nestjs; the nest entry does, and shares the service class', () => {
    // `npm test` builds first (pretest): these are the files a consumer gets.
    const output = execFileSync(
      process.execPath,
      [
        '-e',
        `
        require('reflect-metadata');
        const root = require('./dist/index.js');
        const nestLoadedByRoot = Object.keys(require.cache).some((p) => p.includes('@nestjs'));
        const nest = require('./dist/nest/index.js');
        console.log(JSON.stringify({
          nestLoadedByRoot,
          rootExportsModule: 'SlotLockModule' in root,
          nestExports: Object.keys(nest).sort(),
          sameServiceClass: nest.SlotLockService === root.SlotLockService,
          nestLoadedAfter: Object.keys(require.cache).some((p) => p.includes('@nestjs')),
        }));
        `,
      ],
      { cwd: ROOT, encoding: 'utf8' },
    );
    expect(JSON.parse(output)).toEqual({
      nestLoadedByRoot: false,
      rootExportsModule: false,
      nestExports: [
        'InjectSlotLockService',
        'SLOT_LOCK_LOGGER_CONTEXT',
        'SlotLockException',
        'SlotLockExceptionFilter',
        'SlotLockHealthIndicator',
        'SlotLockModule',
        'SlotLockService',
        'getSlotLockHealthIndicatorToken',
        'getSlotLockOptionsToken',
        'getSlotLockServiceToken',
      ],
      sameServiceClass: true,
      nestLoadedAfter: true,
    });
  });
});
