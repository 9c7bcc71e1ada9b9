import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The machine a run measured, for the report's header. */
export interface MachineDescription {
  readonly cpu: string;
  readonly cores: number;
  readonly memory: string;
  readonly os: string;
  readonly node: string;
  /** Load average over the last minute when the run started: > cores means others were busy. */
  readonly loadAverage: number;
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(release)?.[1];
    if (pretty !== undefined) return `${pretty} (${os.type()} ${os.release()})`;
  } catch {
    // Not Linux, or no os-release: fall through.
  }
  return `${os.type()} ${os.release()}`;
}

export function describeMachine(): MachineDescription {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    os: osName(),
    node: process.version,
    loadAverage: os.loadavg()[0] ?? 0,
  };
}

export function machineLine(machine: MachineDescription): string {
  return (
    `${machine.cpu}, ${machine.cores} cores, ${machine.memory}; ${machine.os}; Node ${machine.node}; ` +
    `load average ${machine.loadAverage.toFixed(1)} at start`
  );
}
