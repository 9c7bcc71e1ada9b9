/**
 * Contention on one server: processes take random, overlapping multi-key sets in random
 * order, hold them briefly, release them. No raw driver error reaches a caller, no set is
 * ever held in part, nothing remains at the end.
 */
import type { DataSource } from 'typeorm';
import { testDatabaseName } from '../support/database';
import { killWorkers } from '../support/spawn-workers';
import { contentionKey } from '../support/stress/contention';
import { recordFigures, report } from '../support/stress/figures';
import { expectContentionHeld } from '../support/stress/expectations';
import { runContention } from '../support/stress/scenarios';
import { MAIN_SERVER_URL, databaseUrl, openDataSource, prepareDatabase } from '../support/stress/servers';

const DATABASE = testDatabaseName('stress_contention');
const URL = databaseUrl(MAIN_SERVER_URL, DATABASE);

describe('contention on one server: random overlapping sets from several processes', () => {
  let dataSource: DataSource;

  beforeAll(async () => {
    await prepareDatabase(MAIN_SERVER_URL, DATABASE);
    dataSource = await openDataSource(URL);
  });
  afterEach(() => {
    killWorkers();
  });
  afterAll(async () => {
    killWorkers();
    await dataSource?.destroy();
  });

  it('4 processes x 4 callers, 1-5 of 12 keys, acquireLocks and commitWithLocks: all or nothing, nothing escapes, nothing left', async () => {
    const run = await runContention({
      urls: [URL],
      processes: 4,
      loopsPerProcess: 4,
      durationMs: 8000,
      keyPool: Array.from({ length: 12 }, (_, i) => contentionKey(i)),
      minKeys: 1,
      maxKeys: 5,
      commitWithLocksChance: 0.3,
      holdMaxMs: 3,
      watch: [dataSource],
    });
    report('contention (main server)', run);
    recordFigures('contention.single', run);
    expectContentionHeld(run);
  });
});
