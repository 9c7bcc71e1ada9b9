/**
 * Jest globalSetup of the stress suite: starts a fresh figures file for this run (each
 * test adds its section; scripts read it to fill docs/guarantees.md).
 */
import { startFigures } from './figures';

export default function globalSetup(): void {
  startFigures();
}
