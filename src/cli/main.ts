#!/usr/bin/env node
/**
 * The `slotlock` command (package.json "bin"). See `slotlock --help`.
 */
import 'reflect-metadata';
import { runCli } from './run-cli';

void runCli(process.argv).then((exitCode) => {
  // Not process.exit(): stdout may be a pipe still draining; everything is closed, so Node ends by itself.
  process.exitCode = exitCode;
});
