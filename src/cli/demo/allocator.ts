/**
 * One allocator of `slotlock demo`, in a process of its own (forked by the demo). For
 * each round the demo asks for, it does what the seed's test plan makes Drydock's
 * blueprint do: load the free bindings, pause (the seed's `sleep(10)`, shortened), then
 * allocate a resource for a binding. Without slot locks it takes the first binding it
 * saw; with them it tries the bindings it saw in turn, each in
 * `commitWithLocks(resourcePHID, ['binding(ID)'], insert resource)`, as Drydock's Almanac
 * blueprint does, and reports every SlotLockException it meets.
 */
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptionsFromUrl, SlotLockException, SlotLockService } from '../../index';
import { bindingLockKey, insertResource, loadFreeBindings } from './demo-schema';
import { ALLOCATOR_CONFIG_ENV, type AllocatorConfig, type AllocatorEvent, type DemoCommand } from './protocol';

function send(event: AllocatorEvent): void {
  process.send?.(event);
}

async function allocate(
  dataSource: DataSource,
  slotLocks: SlotLockService,
  config: AllocatorConfig,
  round: number,
  useSlotLocks: boolean,
): Promise<void> {
  const allocator = config.allocator;
  const free = await loadFreeBindings(dataSource);
  const pauseMs = config.minPauseMs + Math.floor(Math.random() * (config.maxPauseMs - config.minPauseMs + 1));
  send({ type: 'loaded', allocator, round, freeBindings: free, pauseMs });
  // The window the seed opens with sleep(10): what was loaded may no longer be true.
  await new Promise((resolve) => setTimeout(resolve, pauseMs));

  // The resource's PHID owns the binding's lock, as long as the resource exists.
  const resourcePHID = `PHID-DRYR-demo.round${round}.alloc${allocator}`;
  const candidates = useSlotLocks ? free : free.slice(0, 1);
  for (const bindingId of candidates) {
    const resource = { phid: resourcePHID, bindingId, allocator, round };
    if (!useSlotLocks) {
      await insertResource(dataSource.manager, resource);
      send({ type: 'allocated', allocator, round, bindingId, resourcePHID });
      return;
    }
    try {
      await slotLocks.commitWithLocks(resourcePHID, [bindingLockKey(bindingId)], (manager) =>
        insertResource(manager, resource),
      );
      send({ type: 'allocated', allocator, round, bindingId, resourcePHID });
      return;
    } catch (error) {
      if (!(error instanceof SlotLockException)) throw error;
      send({ type: 'conflict', allocator, round, bindingId, message: error.message });
    }
  }
  send({
    type: 'gave-up',
    allocator,
    round,
    reason: free.length === 0 ? 'no free binding' : 'every binding it saw was taken',
  });
}

/** This process's allocator number, once its config is read (0 before). */
let allocatorNumber = 0;

async function main(): Promise<void> {
  const config = JSON.parse(process.env[ALLOCATOR_CONFIG_ENV] ?? '') as AllocatorConfig;
  allocatorNumber = config.allocator;
  const dataSource = new DataSource(dataSourceOptionsFromUrl(config.url));
  await dataSource.initialize();
  const slotLocks = new SlotLockService(dataSource);

  let work = Promise.resolve();
  process.on('message', (command: DemoCommand) => {
    work = work
      .then(async () => {
        if (command.type === 'exit') {
          process.disconnect();
          return;
        }
        await allocate(dataSource, slotLocks, config, command.round, command.useSlotLocks);
        send({ type: 'round-done', allocator: config.allocator, round: command.round });
      })
      .catch(fail);
  });
  // The demo is gone (done, or killed): nothing is left to do.
  process.once('disconnect', () => {
    const closing = dataSource.isInitialized ? dataSource.destroy() : Promise.resolve();
    void closing.catch(() => undefined).finally(() => process.exit(0));
  });
  send({ type: 'ready', allocator: config.allocator });
}

function fail(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const event: AllocatorEvent = { type: 'failed', allocator: allocatorNumber, message };
  if (process.send !== undefined && process.connected) {
    process.send(event, () => process.exit(1));
  } else {
    process.stderr.write(`allocator ${allocatorNumber} failed: ${message}\n`);
    process.exit(1);
  }
}

if (require.main === module) {
  if (process.send === undefined) {
    process.stderr.write('this is a worker of `slotlock demo`; run `slotlock demo` instead\n');
    process.exit(2);
  }
  main().catch(fail);
}
