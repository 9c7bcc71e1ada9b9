/**
 * Jest globalTeardown of the stress suite: whatever happened, stop the Galera nodes and
 * the throwaway MariaDB the tests started (each by its own pid file; the main server on
 * 3306 is never touched). Each test file also stops what it started in afterAll: this
 * is the safety net for a file that died before.
 */
import { finishFigures } from './figures';
import { galeraCluster, scratchMariadb } from './servers';

export default async function globalTeardown(): Promise<void> {
  finishFigures();
  const results = await Promise.allSettled([galeraCluster.stop(), scratchMariadb.destroy()]);
  for (const result of results) {
    if (result.status === 'rejected') console.error(String(result.reason));
  }
}
