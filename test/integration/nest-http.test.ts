import { channel } from 'node:diagnostics_channel';
import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Injectable,
  Module,
  Param,
  Post,
  UseFilters,
  type INestApplication,
  type LoggerService,
  type ModuleMetadata,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule, type TypeOrmModuleOptions } from '@nestjs/typeorm';
import { DataSource, type QueryRunner } from 'typeorm';
import { digestForIndex, SLOT_LOCK_CHANNELS, slotLockMigrations, type SlotLockRetryEvent } from '../../src';
import {
  getSlotLockHealthIndicatorToken,
  SLOT_LOCK_LOGGER_CONTEXT,
  SlotLockExceptionFilter,
  SlotLockHealthIndicator,
  SlotLockModule,
  SlotLockService,
  type SlotLockErrorBody,
  type SlotLockModuleOptions,
} from '../../src/nest';
import { dataSourceOptions, recreateDatabase, testDatabaseName } from '../support/database';

const DB = testDatabaseName('nest_http');
const DB_EMPTY = testDatabaseName('nest_http_empty');

const FIRST = 'PHID-DRYL-httpfirst0000000000';
const SECOND = 'PHID-DRYL-httpsecond000000000';

/** TypeOrmModule options on a test database; `migrate: false` leaves it without the lock table. */
function typeOrmOptions(database: string, migrate = true): TypeOrmModuleOptions {
  return {
    ...dataSourceOptions(database),
    migrations: [...slotLockMigrations],
    migrationsRun: migrate,
    retryAttempts: 0,
  };
}

@Controller('leases')
class LeaseController {
  constructor(
    private readonly slotLocks: SlotLockService,
    private readonly dataSource: DataSource,
  ) {}

  @Post(':lease/hosts/:host')
  async lease(@Param('lease') lease: string, @Param('host') host: string): Promise<{ lease: string; host: string }> {
    await this.slotLocks.acquireLocks(lease, [`host(${host})`]);
    return { lease, host };
  }

  /** Takes the lock in a transaction that waits at most 1 s for another's row lock: contention, not a conflict. */
  @Post(':lease/hosts/:host/impatient')
  async impatient(@Param('lease') lease: string, @Param('host') host: string): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      await manager.query('SET SESSION innodb_lock_wait_timeout = 1');
      await this.slotLocks.acquireLocks(lease, [`host(${host})`], { manager });
    });
  }

  @Delete(':lease')
  @HttpCode(200)
  async release(@Param('lease') lease: string): Promise<{ released: number }> {
    return { released: await this.slotLocks.releaseLocks(lease) };
  }
}

@Controller('filtered')
@UseFilters(SlotLockExceptionFilter)
class FilteredController {
  constructor(private readonly slotLocks: SlotLockService) {}

  @Post(':lease/hosts/:host')
  async lease(@Param('lease') lease: string, @Param('host') host: string): Promise<void> {
    await this.slotLocks.acquireLocks(lease, [`host(${host})`]);
  }
}

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly slotLocks: SlotLockHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(): ReturnType<HealthCheckService['check']> {
    return this.health.check([() => this.slotLocks.isHealthy('slotlock')]);
  }
}

/** A Nest logger that keeps what the SlotLock context writes. */
@Injectable()
class RecordingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = [];
  #keep(level: string, message: unknown, context: unknown): void {
    if (context === SLOT_LOCK_LOGGER_CONTEXT) this.lines.push({ level, message: String(message) });
  }
  log(message: unknown, context?: unknown): void {
    this.#keep('log', message, context);
  }
  warn(message: unknown, context?: unknown): void {
    this.#keep('warn', message, context);
  }
  debug(message: unknown, context?: unknown): void {
    this.#keep('debug', message, context);
  }
  error(message: unknown, _trace?: unknown, context?: unknown): void {
    this.#keep('error', message, context);
  }
  verbose(message: unknown, context?: unknown): void {
    this.#keep('verbose', message, context);
  }
}

interface Answer {
  status: number;
  retryAfter: string | null;
  body: unknown;
}

describe('drydock-slotlock/nest in an HTTP app', () => {
  const open = new Set<INestApplication>();

  /** Boots an Express app on an ephemeral port of 127.0.0.1 and returns it with its base URL. */
  async function serve(
    metadata: ModuleMetadata,
    setup: (app: INestApplication) => void = () => undefined,
    logger: LoggerService | false = false,
  ): Promise<{ app: INestApplication; request: (method: string, path: string) => Promise<Answer> }> {
    @Module(metadata)
    class AppModule {}
    const app = await NestFactory.create(AppModule, { logger });
    open.add(app);
    setup(app);
    await app.listen(0, '127.0.0.1');
    const base = await app.getUrl();
    return {
      app,
      request: async (method, path) => {
        const response = await fetch(`${base}${path}`, { method });
        const text = await response.text();
        return {
          status: response.status,
          retryAfter: response.headers.get('retry-after'),
          body: text === '' ? undefined : (JSON.parse(text) as unknown),
        };
      },
    };
  }

  async function close(app: INestApplication): Promise<void> {
    open.delete(app);
    await app.close();
  }

  /** An app on the migrated test database with the lock controllers, and whatever `extra` adds. */
  function lockApp(options: SlotLockModuleOptions = {}, extra: ModuleMetadata = {}): ModuleMetadata {
    return {
      imports: [TypeOrmModule.forRoot(typeOrmOptions(DB)), SlotLockModule.forRoot(options), ...(extra.imports ?? [])],
      controllers: [LeaseController, FilteredController, ...(extra.controllers ?? [])],
    };
  }

  beforeAll(async () => {
    await recreateDatabase(DB);
    await recreateDatabase(DB_EMPTY);
  });
  afterEach(async () => {
    for (const app of [...open]) await close(app);
  });

  describe('SlotLockExceptionFilter', () => {
    test('used globally: a held lock is a 409 with the message and the lock map', async () => {
      const { request } = await serve(lockApp(), (app) => app.useGlobalFilters(new SlotLockExceptionFilter()));
      expect(await request('POST', `/leases/${FIRST}/hosts/7`)).toEqual({
        status: 201,
        retryAfter: null,
        body: { lease: FIRST, host: '7' },
      });
      const conflict = await request('POST', `/leases/${SECOND}/hosts/7`);
      expect(conflict).toEqual({
        status: 409,
        retryAfter: null,
        body: {
          statusCode: 409,
          message: `Unable to acquire slot locks: "host(7)" (owned by "${FIRST}").`,
          lockMap: { 'host(7)': FIRST },
        } satisfies SlotLockErrorBody,
      });
      expect(await request('DELETE', `/leases/${FIRST}`)).toMatchObject({ status: 200, body: { released: 1 } });
      expect((await request('POST', `/leases/${SECOND}/hosts/7`)).status).toBe(201);
      expect(await request('DELETE', `/leases/${SECOND}`)).toMatchObject({ body: { released: 1 } });
    });

    test('used on one controller: that controller answers 409, the others keep Nest’s 500', async () => {
      const { request } = await serve(lockApp());
      expect((await request('POST', `/filtered/${FIRST}/hosts/8`)).status).toBe(201);
      const filtered = await request('POST', `/filtered/${SECOND}/hosts/8`);
      expect(filtered.status).toBe(409);
      expect(filtered.body).toMatchObject({ statusCode: 409, lockMap: { 'host(8)': FIRST } });
      expect(await request('POST', `/leases/${SECOND}/hosts/8`)).toMatchObject({
        status: 500,
        body: { statusCode: 500, message: 'Internal server error' },
      });
      await request('DELETE', `/leases/${FIRST}`);
    });

    test('contention is a 503 with Retry-After', async () => {
      const { app, request } = await serve(lockApp(), (nest) =>
        nest.useGlobalFilters(new SlotLockExceptionFilter({ retryAfterSeconds: 3 })),
      );
      // Another transaction has inserted host(9) and not committed: the request's insert waits on its row lock.
      const blocker: QueryRunner = app.get(DataSource).createQueryRunner();
      await blocker.startTransaction();
      try {
        await blocker.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
          FIRST,
          digestForIndex('host(9)'),
          'host(9)',
        ]);
        const answer = await request('POST', `/leases/${SECOND}/hosts/9/impatient`);
        expect(answer.status).toBe(503);
        expect(answer.retryAfter).toBe('3');
        expect(answer.body).toMatchObject({ statusCode: 503, message: expect.stringMatching(/contention/) });
      } finally {
        await blocker.rollbackTransaction();
        await blocker.release();
      }
    });

    test('a bad Retry-After is refused when the filter is made', () => {
      expect(() => new SlotLockExceptionFilter({ retryAfterSeconds: -1 })).toThrow(RangeError);
      expect(() => new SlotLockExceptionFilter({ retryAfterSeconds: 1.5 })).toThrow(/retryAfterSeconds/);
    });
  });

  describe('SlotLockHealthIndicator with @nestjs/terminus', () => {
    test('up when the lock table is there', async () => {
      const { request } = await serve(lockApp({}, { imports: [TerminusModule], controllers: [HealthController] }));
      expect(await request('GET', '/health')).toEqual({
        status: 200,
        retryAfter: null,
        body: {
          status: 'ok',
          info: { slotlock: { status: 'up', table: 'drydock_slotlock' } },
          error: {},
          details: { slotlock: { status: 'up', table: 'drydock_slotlock' } },
        },
      });
    });

    test('down, with a 503, when the database has no lock table (not migrated)', async () => {
      const { request } = await serve({
        imports: [TypeOrmModule.forRoot(typeOrmOptions(DB_EMPTY, false)), SlotLockModule.forRoot(), TerminusModule],
        controllers: [HealthController],
      });
      const answer = await request('GET', '/health');
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({
        status: 'error',
        error: {
          slotlock: {
            status: 'down',
            table: 'drydock_slotlock',
            message: expect.stringMatching(/doesn't exist.*run the migrations/),
          },
        },
      });
    });

    test('a named data source has its own indicator', async () => {
      const { app } = await serve({
        imports: [
          TypeOrmModule.forRoot({ ...typeOrmOptions(DB), name: 'locks' }),
          TypeOrmModule.forRoot({ ...typeOrmOptions(DB_EMPTY, false), name: 'empty' }),
          SlotLockModule.forRoot({ dataSourceName: 'locks' }),
          SlotLockModule.forRoot({ dataSourceName: 'empty' }),
        ],
      });
      const locks = app.get<SlotLockHealthIndicator>(getSlotLockHealthIndicatorToken('locks'));
      const empty = app.get<SlotLockHealthIndicator>(getSlotLockHealthIndicatorToken('empty'));
      await expect(locks.isHealthy('locks')).resolves.toEqual({ locks: { status: 'up', table: 'drydock_slotlock' } });
      await expect(empty.isHealthy('empty')).resolves.toMatchObject({ empty: { status: 'down' } });
    });
  });

  describe('logEvents', () => {
    test('with logEvents, acquisitions, conflicts and releases reach Nest’s Logger, and app.close() unsubscribes', async () => {
      const logger = new RecordingLogger();
      const { app, request } = await serve(
        lockApp({ logEvents: true }),
        (nest) => nest.useGlobalFilters(new SlotLockExceptionFilter()),
        logger,
      );
      expect(channel(SLOT_LOCK_CHANNELS.acquired).hasSubscribers).toBe(true);
      await request('POST', `/leases/${FIRST}/hosts/11`);
      await request('POST', `/leases/${SECOND}/hosts/11`);
      await request('DELETE', `/leases/${FIRST}`);
      expect(logger.lines).toEqual([
        { level: 'log', message: `${FIRST} acquired 1 lock: host(11)` },
        {
          level: 'warn',
          message: `${SECOND} could not acquire 1 lock: host(11): held: "host(11)" (owned by "${FIRST}")`,
        },
        { level: 'log', message: `${FIRST} released 1 lock` },
      ]);
      // A contention retry, as the service publishes it (deadlocks are not made on demand here).
      channel(SLOT_LOCK_CHANNELS.retry).publish({
        ownerPHID: FIRST,
        operation: 'commitWithLocks',
        attempt: 1,
        code: 1213,
      } satisfies SlotLockRetryEvent);
      expect(logger.lines.at(-1)).toEqual({
        level: 'debug',
        message: `commitWithLocks for ${FIRST}: contention (1213) on attempt 1, retrying`,
      });

      await close(app);
      for (const name of Object.values(SLOT_LOCK_CHANNELS)) expect(channel(name).hasSubscribers).toBe(false);
    });

    test('without logEvents nothing is logged and nothing subscribes', async () => {
      const logger = new RecordingLogger();
      const { request } = await serve(lockApp(), () => undefined, logger);
      for (const name of Object.values(SLOT_LOCK_CHANNELS)) expect(channel(name).hasSubscribers).toBe(false);
      await request('POST', `/leases/${FIRST}/hosts/12`);
      await request('DELETE', `/leases/${FIRST}`);
      expect(logger.lines).toEqual([]);
    });

    test('logEvents must be a boolean, also next to useFactory', () => {
      expect(() => SlotLockModule.forRoot({ logEvents: 'yes' as unknown as boolean })).toThrow(/options\.logEvents/);
      expect(() => SlotLockModule.forRootAsync({ logEvents: 1 as unknown as boolean, useFactory: () => ({}) })).toThrow(
        /options\.logEvents must be a boolean/,
      );
    });
  });
});
