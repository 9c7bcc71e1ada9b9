/**
 * Child process of the session race tests: a process that holds locks under a session,
 * driven command by command by the parent (see {@link SessionProcess}), so that the
 * parent can kill or pause it at a chosen moment.
 *
 * Events: `ready` once connected; `lost` (with `reason`) when its session's signal aborts.
 * Commands: `open { ttlMs }`, `acquireLocks { keys }`, `acquireSlot { name, limit }`,
 * `commitWithLocks { keys, workId }` (its work inserts `workId` into `session_work`),
 * `status`, `close`.
 */
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import type { SlotLockSession } from '../../src';
import { childConfig, describeError, emit, loadSlotLock, serveCommands } from './session-process';

/** What the parent gives the holder. */
export interface SessionHolderConfig {
  /** The test database (`engine.url(label)`), migrated. */
  readonly url: string;
  /** Where to load the package from (slotLockPackagePath()). */
  readonly packagePath: string;
}

async function main(): Promise<void> {
  const { url, packagePath } = childConfig<SessionHolderConfig>();
  const { SlotLockService, dataSourceOptionsFromUrl } = loadSlotLock(packagePath);
  const dataSource = await new DataSource(dataSourceOptionsFromUrl(url)).initialize();
  const service = new SlotLockService(dataSource);
  const placeholder = dataSource.options.type === 'postgres' ? '$1' : '?';
  let session: SlotLockSession | undefined;
  const current = (): SlotLockSession => {
    if (session === undefined) throw new Error('no session: send open first');
    return session;
  };

  serveCommands({
    async open(args) {
      const opened = await service.openSession({ ttlMs: args.ttlMs as number });
      session = opened;
      opened.signal.addEventListener(
        'abort',
        () => emit({ event: 'lost', ownerPHID: opened.ownerPHID, reason: describeError(opened.signal.reason) }),
        {
          once: true,
        },
      );
      return { ownerPHID: opened.ownerPHID };
    },
    async acquireLocks(args) {
      await service.acquireLocks(current().ownerPHID, args.keys as string[]);
    },
    async acquireSlot(args) {
      return service.acquireSlot(current().ownerPHID, args.name as string, args.limit as number);
    },
    async commitWithLocks(args) {
      return service.commitWithLocks(current().ownerPHID, args.keys as string[], async (manager) => {
        await manager.query(`INSERT INTO session_work (id) VALUES (${placeholder})`, [args.workId]);
        return args.workId;
      });
    },
    async status() {
      const { signal, closed, ownerPHID } = current();
      return {
        ownerPHID,
        aborted: signal.aborted,
        closed,
        reason: signal.aborted ? describeError(signal.reason) : null,
      };
    },
    async close() {
      return current().close();
    },
  });
  emit({ event: 'ready', pid: process.pid });
}

main().catch((error: unknown) => {
  process.stderr.write(
    `session-holder failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
