/**
 * The Nest smoke of one compatibility cell: a real Nest app (Express, an ephemeral port
 * of 127.0.0.1) injecting SlotLockService, answering over HTTP through
 * SlotLockExceptionFilter, checked by @nestjs/terminus through SlotLockHealthIndicator,
 * logging the service's events. MariaDB: COMPAT_MARIADB_URL (any state) and
 * COMPAT_MARIADB_EMPTY_URL (a database without the lock table).
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { channel } from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import {
  Controller,
  Delete,
  Get,
  HttpCode,
  Injectable,
  Module,
  Param,
  Post,
  type INestApplication,
  type LoggerService,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { DrydockSlotLock, digestForIndex, SLOT_LOCK_CHANNELS, slotLockMigrations } from 'drydock-slotlock';
import {
  SLOT_LOCK_LOGGER_CONTEXT,
  SlotLockExceptionFilter,
  SlotLockHealthIndicator,
  SlotLockModule,
  SlotLockService,
} from 'drydock-slotlock/nest';

const URL = required('COMPAT_MARIADB_URL');
const EMPTY_URL = required('COMPAT_MARIADB_EMPTY_URL');
const FIRST = 'PHID-DRYL-compatnestfirst0000';
const SECOND = 'PHID-DRYL-compatnestsecond000';

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set: the matrix passes it`);
  return value;
}

@Injectable()
class Leases {
  constructor(readonly slotLocks: SlotLockService) {}
}

@Controller('leases')
class LeaseController {
  constructor(
    private readonly leases: Leases,
    private readonly dataSource: DataSource,
  ) {}

  @Post(':lease/hosts/:host')
  async take(@Param('lease') lease: string, @Param('host') host: string): Promise<{ lease: string }> {
    await this.leases.slotLocks.acquireLocks(lease, [`host(${host})`]);
    return { lease };
  }

  /** Waits at most 1 s for another transaction's row lock: contention, not a conflict. */
  @Post(':lease/hosts/:host/impatient')
  async impatient(@Param('lease') lease: string, @Param('host') host: string): Promise<void> {
    await this.dataSource.transaction(async (manager) => {
      await manager.query('SET SESSION innodb_lock_wait_timeout = 1');
      await this.leases.slotLocks.acquireLocks(lease, [`host(${host})`], { manager });
    });
  }

  @Delete(':lease')
  @HttpCode(200)
  async release(@Param('lease') lease: string): Promise<{ released: number }> {
    return { released: await this.leases.slotLocks.releaseLocks(lease) };
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

/** Keeps the lines logged under the SlotLock context. */
class RecordingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(message: unknown, context?: unknown): void {
    if (context === SLOT_LOCK_LOGGER_CONTEXT) this.lines.push(`log ${String(message)}`);
  }
  warn(message: unknown, context?: unknown): void {
    if (context === SLOT_LOCK_LOGGER_CONTEXT) this.lines.push(`warn ${String(message)}`);
  }
  error(): void {}
  debug(): void {}
  verbose(): void {}
}

interface Answer {
  status: number;
  retryAfter: string | null;
  body: unknown;
}

async function serve(url: string, logger: LoggerService): Promise<{ app: INestApplication; base: string }> {
  @Module({
    imports: [
      TypeOrmModule.forRoot({
        type: 'mysql',
        url,
        entities: [DrydockSlotLock],
        migrations: [...slotLockMigrations],
        migrationsRun: url === URL,
        retryAttempts: 0,
      }),
      SlotLockModule.forRoot({ logEvents: true }),
      TerminusModule,
    ],
    controllers: [LeaseController, HealthController],
    providers: [Leases],
  })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger });
  app.useGlobalFilters(new SlotLockExceptionFilter({ retryAfterSeconds: 2 }));
  await app.listen(0, '127.0.0.1');
  return { app, base: await app.getUrl() };
}

async function request(base: string, method: string, path: string): Promise<Answer> {
  const response = await fetch(`${base}${path}`, { method });
  const text = await response.text();
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}

describe('a Nest app on the packed package (MariaDB)', () => {
  const logger = new RecordingLogger();
  let app: INestApplication | undefined;
  let base: string;

  before(async () => {
    const served = await serve(URL, logger);
    ({ app, base } = served);
    await served.app.get(DataSource).query('DELETE FROM drydock_slotlock');
  });
  after(async () => {
    await app?.close();
  });
  const running = (): INestApplication => app ?? assert.fail('the app is not running');

  it('injects the service and answers a held lock with 409 and the lock map', async () => {
    assert.ok(running().get(Leases).slotLocks instanceof SlotLockService);
    assert.deepEqual(await request(base, 'POST', `/leases/${FIRST}/hosts/7`), {
      status: 201,
      retryAfter: null,
      body: { lease: FIRST },
    });
    assert.deepEqual(await request(base, 'POST', `/leases/${SECOND}/hosts/7`), {
      status: 409,
      retryAfter: null,
      body: {
        statusCode: 409,
        message: `Unable to acquire slot locks: "host(7)" (owned by "${FIRST}").`,
        lockMap: { 'host(7)': FIRST },
      },
    });
    assert.deepEqual((await request(base, 'DELETE', `/leases/${FIRST}`)).body, { released: 1 });
  });

  it('answers contention with 503 and Retry-After', async () => {
    const blocker = running().get(DataSource).createQueryRunner();
    await blocker.startTransaction();
    try {
      await blocker.query('INSERT INTO drydock_slotlock (ownerPHID, lockIndex, lockKey) VALUES (?, ?, ?)', [
        FIRST,
        digestForIndex('host(9)'),
        'host(9)',
      ]);
      const answer = await request(base, 'POST', `/leases/${SECOND}/hosts/9/impatient`);
      assert.equal(answer.status, 503);
      assert.equal(answer.retryAfter, '2');
    } finally {
      await blocker.rollbackTransaction();
      await blocker.release();
    }
  });

  it('reports the lock table up to @nestjs/terminus', async () => {
    const answer = await request(base, 'GET', '/health');
    assert.equal(answer.status, 200);
    assert.deepEqual((answer.body as { info: unknown }).info, {
      slotlock: { status: 'up', table: 'drydock_slotlock' },
    });
  });

  it("writes the service's events to Nest's Logger", () => {
    assert.deepEqual(logger.lines.slice(0, 3), [
      `log ${FIRST} acquired 1 lock: host(7)`,
      `warn ${SECOND} could not acquire 1 lock: host(7): held: "host(7)" (owned by "${FIRST}")`,
      `log ${FIRST} released 1 lock`,
    ]);
  });

  it('reports a database without the lock table down, with a 503', async () => {
    const empty = await serve(EMPTY_URL, new RecordingLogger());
    try {
      const answer = await request(empty.base, 'GET', '/health');
      assert.equal(answer.status, 503);
      const error = (answer.body as { error: Record<string, { status: string; message: string }> }).error;
      assert.equal(error.slotlock?.status, 'down');
      assert.match(error.slotlock?.message ?? '', /run the migrations/);
    } finally {
      await empty.app.close();
    }
  });

  it('unsubscribes from the channels when the app closes', async () => {
    await running().close();
    app = undefined;
    for (const name of Object.values(SLOT_LOCK_CHANNELS)) assert.equal(channel(name).hasSubscribers, false, name);
  });
});
