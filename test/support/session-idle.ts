/**
 * Child process of the session race tests: opens a session, takes a lock under it, and
 * then (with `destroy`) destroys its DataSource, never closing the session, and does
 * nothing more. Its stdin is closed by the parent, so nothing but the package's own
 * timers and sockets could keep it alive: it must exit on its own (the heartbeat's
 * timers are unref'd).
 *
 * Events: `idle { ownerPHID }` once the lock is taken, `destroyed` after the DataSource is.
 */
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { childConfig, emit, loadSlotLock } from './session-process';

/** What the parent gives the idle child. */
export interface SessionIdleConfig {
  readonly url: string;
  /** Where to load the package from (slotLockPackagePath()). */
  readonly packagePath: string;
  readonly ttlMs: number;
  readonly key: string;
  /** Destroy the DataSource (without closing the session) once the lock is taken. */
  readonly destroy: boolean;
}

async function main(): Promise<void> {
  const config = childConfig<SessionIdleConfig>();
  const { SlotLockService, dataSourceOptionsFromUrl } = loadSlotLock(config.packagePath);
  const dataSource = await new DataSource(dataSourceOptionsFromUrl(config.url)).initialize();
  const service = new SlotLockService(dataSource);
  const session = await service.openSession({ ttlMs: config.ttlMs });
  await service.acquireLocks(session.ownerPHID, [config.key]);
  emit({ event: 'idle', ownerPHID: session.ownerPHID });
  if (config.destroy) {
    await dataSource.destroy();
    emit({ event: 'destroyed' });
  }
  process.on('exit', () => emit({ event: 'exit', aborted: session.signal.aborted }));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `session-idle failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
