import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { DataSource } from 'typeorm';
import { SLOT_LOCK_CHANNELS, SlotLockService } from '../../src';
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
