import type { DataSource } from 'typeorm';
import { DrydockSlotLock, digestForIndex } from '../../../src';
import type { ContentionCount } from '../closed-loop';
import type { CycleContender } from '../contender';
import { isMysqlContention } from '../engines/mariadb';
import { retryAtOnce } from '../retry';

/**
 * A literal port of the lock table to TypeORM repositories, as one might write it
 * without this package: in `dataSource.transaction`, one repository `insert` per key
 * (the keys in the caller's order), then `repository.delete({ ownerPHID })`. Same table,
 * same unique index, so the same guarantees; K+2 round trips instead of one.
 * Contention (deadlocks) is retried as every raw contender does (retry.ts), the whole
 * transaction again.
 */
export function phorgeLiteralContender(dataSource: DataSource): CycleContender {
  const contention: ContentionCount = { errors: 0 };
  return {
    label: 'Phorge-literal port',
    contention,
    cycle: async (caller) => {
      await retryAtOnce(contention, isMysqlContention, () =>
        dataSource.transaction(async (manager) => {
          const locks = manager.getRepository(DrydockSlotLock);
          for (const lockKey of caller.keys) {
            await locks.insert({ ownerPHID: caller.owner, lockIndex: digestForIndex(lockKey), lockKey });
          }
        }),
      );
      await retryAtOnce(contention, isMysqlContention, () =>
        dataSource.getRepository(DrydockSlotLock).delete({ ownerPHID: caller.owner }),
      );
    },
  };
}
