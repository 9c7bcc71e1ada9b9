/**
 * The stress suite (`npm run test:stress`): multi-process races, faults, a Galera
 * cluster, generated bad input. Run it in band: its tests start OS processes and
 * database servers of their own, and the machines have two cores.
 *
 * @type {import('jest').Config}
 */
module.exports = {
  rootDir: '../..',
  testEnvironment: 'node',
  roots: ['<rootDir>/test/stress'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }] },
  setupFiles: ['reflect-metadata'],
  // Starts a fresh figures file for the run (scratch/stress/last-run.json).
  globalSetup: '<rootDir>/test/support/stress/global-setup.ts',
  // Stops the servers the suite started (Galera, the throwaway MariaDB) even when a test failed.
  globalTeardown: '<rootDir>/test/support/stress/global-teardown.ts',
  // One file at a time: the files share the machine's two cores and start servers of their own.
  maxWorkers: 1,
  testTimeout: 300000,
};
