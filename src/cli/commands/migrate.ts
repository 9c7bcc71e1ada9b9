import type { Command } from 'commander';
import type { DataSource } from 'typeorm';
import { redactUrl } from '../../index';
import { exitWith } from '../action';
import { cliDatabaseUrl, cliDataSourceOptions, withDatabase } from '../database';
import { ensureDatabase } from '../server-admin';
import { migrateExclusively, type MigrationRunOptions } from '../migrate-exclusively';
import { EXIT } from '../exit-codes';
import { refuseUnrecordedLockTable } from '../unrecorded-lock-table';
import { urlOption } from '../options';

interface MigrateOptions {
  readonly revert?: boolean;
  readonly createDatabase?: boolean;
  readonly url?: string;
}

/** `slotlock migrate [--revert] [--create-database]` */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .summary('create the lock and session tables (run the package migrations)')
    .description(
      "Runs the package's pending TypeORM migrations: the first creates drydock_slotlock exactly as Phorge " +
        'does, the second drydock_slotlock_session, the sessions of `slotlock run` and of apps that open ' +
        'sessions (a database migrated before sessions existed gets only the second). TypeORM records them in ' +
        'the `migrations` table. --revert undoes the last one: the session table first, drydock_slotlock (and ' +
        'every lock in it) on the next --revert. Several runs at once take turns (a lock per database, or per ' +
        'server on MySQL; per node on a Galera cluster), so each exits 0. Not for a Phorge database: there the ' +
        'lock table exists already; use it as it is (migrate refuses, creating nothing, when it finds ' +
        "drydock_slotlock without TypeORM's record of creating it), and run `slotlock run` there with --ttl 0.",
    )
    .option(
      '--revert',
      'undo the last migration instead (drops drydock_slotlock_session; once that is gone, drydock_slotlock and every lock in it)',
    )
    .option(
      '--create-database',
      'create the database of the URL first if it does not exist (MySQL, PostgreSQL; runs at once all succeed)',
    )
    .addOption(urlOption())
    .addHelpText(
      'after',
      '\nExit codes: 0 done (also when there was nothing to do), 1 database error, 2 bad arguments.',
    )
    .action(
      exitWith(async (options: MigrateOptions) => {
        if (options.createDatabase === true) await createDatabase(cliDatabaseUrl(options.url));
        return withDatabase(
          options.url,
          async ({ url, dataSource }) => {
            const where = redactUrl(url);
            // Several runs at once (deploy scripts, replicas starting together) take turns.
            const lines = await migrateExclusively(dataSource, (migrationOptions) =>
              options.revert === true
                ? revert(dataSource, where, migrationOptions)
                : migrate(dataSource, where, migrationOptions),
            );
            process.stdout.write(lines.map((line) => `${line}\n`).join(''));
            return EXIT.ok;
          },
          { createSqliteFile: true },
        );
      }),
    );
}

/** Runs the pending migrations; resolves to the lines to print (`where`: the URL, password hidden). */
async function migrate(dataSource: DataSource, where: string, options: MigrationRunOptions): Promise<string[]> {
  // Before runMigrations, which would create its `migrations` table in a Phorge database.
  await refuseUnrecordedLockTable(dataSource, where);
  const ran = await dataSource.runMigrations(options);
  return ran.length === 0
    ? [`${where} is up to date: no migration to run`]
    : ran.map((migration) => `ran ${migration.name} on ${where}`);
}

/** Undoes the last migration; resolves to the lines to print (`where`: the URL, password hidden). */
async function revert(dataSource: DataSource, where: string, options: MigrationRunOptions): Promise<string[]> {
  const before = await executedMigrations(dataSource);
  await dataSource.undoLastMigration(options);
  const after = new Set(await executedMigrations(dataSource));
  const reverted = before.filter((name) => !after.has(name));
  return reverted.length === 0
    ? [`nothing to revert on ${where}: no migration has run`]
    : reverted.map((name) => `reverted ${name} on ${where}`);
}

async function createDatabase(url: string): Promise<void> {
  cliDataSourceOptions(url); // a URL that cannot be used is said in the usual words, before any connection
  const created = await ensureDatabase(url);
  if (created !== undefined) process.stdout.write(`${created}\n`);
}

/** Names of the migrations TypeORM has recorded as run, oldest first; none when it never ran any. */
async function executedMigrations(dataSource: DataSource): Promise<string[]> {
  const table = dataSource.options.migrationsTableName ?? 'migrations';
  const runner = dataSource.createQueryRunner();
  try {
    if (!(await runner.hasTable(table))) return [];
    const rows = (await runner.query(`SELECT name FROM ${dataSource.driver.escape(table)} ORDER BY id`)) as Array<{
      name: string;
    }>;
    return rows.map((row) => row.name);
  } finally {
    await runner.release();
  }
}
