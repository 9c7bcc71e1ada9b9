import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { SLOT_LOCK_CHANNELS, SlotLockException, SlotLockService } from '../../src';
import { freshDataSource } from '../support/database';
import { ENGINES, freshEngineDataSource } from '../support/engines';

describe.each(ENGINES)('observability on node:diagnostics_channel, on $name', (engine) => {
  let dataSource: DataSource;
  let service: SlotLockService;
  const events: Array<[channel: string, message: unknown]> = [];
  const listeners = Object.values(SLOT_LOCK_CHANNELS).map((name) => {
    const listener = (message: unknown): void => {
      events.push([name, message]);
    };
    return [name, listener] as const;
  });

  beforeAll(async () => {
    dataSource = await freshEngineDataSource(engine, 'diagnostics');
    service = new SlotLockService(dataSource);
    for (const [name, listener] of listeners) subscribe(name, listener);
  });
  afterAll(async () => {
    for (const [name, listener] of listeners) unsubscribe(name, listener);
    await dataSource?.destroy();
  });
  beforeEach(() => {
    events.length = 0;
  });

  test('reports locks acquired, a conflict with its lock map, and the count released', async () => {
    await service.acquireLocks('PHID-A', ['k1', 'k2']);
    await service.acquireLocks('PHID-B', ['k2']).catch(() => undefined);
    await service.releaseLocks('PHID-A');

    expect(events).toEqual([
      [
        'drydock-slotlock:acquired',
        { ownerPHID: 'PHID-A', lockKeys: expect.arrayContaining(['k1', 'k2']), inCallerTransaction: false },
      ],
      [
        'drydock-slotlock:conflict',
        { ownerPHID: 'PHID-B', lockKeys: ['k2'], failure: 'held', lockMap: { k2: 'PHID-A' } },
      ],
      ['drydock-slotlock:released', { ownerPHID: 'PHID-A', count: 2 }],
    ]);
  });

  test('marks locks taken inside a caller’s transaction, and commitWithLocks conflicts', async () => {
    await dataSource.transaction((manager) => service.acquireLocks('PHID-C', ['k3'], { manager }));
    await service.commitWithLocks('PHID-D', ['k3'], () => undefined).catch(() => undefined);
    await service.releaseLocks('PHID-C');
    expect(
      events.map(([name, message]) => [name, (message as { inCallerTransaction?: boolean }).inCallerTransaction]),
    ).toEqual([
      ['drydock-slotlock:acquired', true],
      ['drydock-slotlock:conflict', undefined],
      ['drydock-slotlock:released', undefined],
    ]);
  });
});

describe('acquireSlot retries on the retry channel, on mariadb', () => {
  test('a lock-wait timeout retried by acquireSlot is published with operation "acquireSlot"', async () => {
    // A pool of one: the session setting below is the service's connection's.
    const dataSource = await freshDataSource('diagnostics_slot_retry', { poolSize: 1 });
    const rivalSource = new DataSource({ ...dataSource.options, poolSize: 1 } as DataSourceOptions);
    const retries: unknown[] = [];
    const onRetry = (message: unknown): void => {
      retries.push(message);
    };
    subscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
    const rival = (await rivalSource.initialize()).createQueryRunner();
    try {
      await dataSource.query('SET SESSION innodb_lock_wait_timeout = 1');
      const service = new SlotLockService(dataSource, { retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 } });
      await rival.startTransaction();
      await new SlotLockService(rivalSource).acquireLocks('PHID-rival', ['retried.slot(0)'], {
        manager: rival.manager,
      });
      const failure = (await service
        .acquireSlot('PHID-me', 'retried', 1)
        .catch((e: unknown) => e)) as SlotLockException;
      expect(failure).toBeInstanceOf(SlotLockException);
      expect(failure.failure).toBe('contention');
      expect(retries).toEqual([
        expect.objectContaining({ ownerPHID: 'PHID-me', operation: 'acquireSlot', attempt: 1 }),
      ]);
    } finally {
      unsubscribe(SLOT_LOCK_CHANNELS.retry, onRetry);
      await rival.rollbackTransaction().catch(() => undefined);
      await rival.release();
      await rivalSource.destroy();
      await dataSource.destroy();
    }
  }, 30_000);
});
