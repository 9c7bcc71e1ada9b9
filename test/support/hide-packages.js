/**
 * A preload (`node --require test/support/hide-packages.js …`) that makes the packages
 * named in SLOTLOCK_TEST_HIDE_PACKAGES (comma-separated, e.g. `pg,better-sqlite3`) look
 * uninstalled: any require() that resolves into `node_modules/<name>/` fails with the
 * MODULE_NOT_FOUND error Node throws for a package that is not there. It acts on the
 * resolved file, so every way of loading the package fails alike (TypeORM tries a plain
 * `require(name)` and then `<cwd>/node_modules/<name>`).
 */
/* global process */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Module = require('node:module');

const hidden = (process.env.SLOTLOCK_TEST_HIDE_PACKAGES ?? '')
  .split(',')
  .map((name) => name.trim())
  .filter((name) => name !== '');
const resolveFilename = Module._resolveFilename;

Module._resolveFilename = function (request, ...rest) {
  const file = resolveFilename.call(this, request, ...rest);
  const where = file.split('\\').join('/');
  if (hidden.some((name) => where.includes(`/node_modules/${name}/`))) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return file;
};
