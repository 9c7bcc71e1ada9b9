/**
 * The cells of the compatibility matrix: which peers, at which exact versions, a
 * throwaway consumer project installs next to the packed package. Every bound of a peer
 * range in package.json is one of these versions: a range claims only what runs here.
 */

/** One consumer project. */
export interface CompatCell {
  /** Short, database-safe name (it is part of the cell's database names). */
  readonly name: string;
  /** Why the cell is there: which bound or pair it covers. */
  readonly covers: string;
  /** Exact versions installed with the tarball (`npm install <tarball> name@version ...`). */
  readonly packages: Readonly<Record<string, string>>;
}

/** Drivers and helpers at their latest version within the package's peer ranges. */
const LATEST = {
  mysql2: '3.24.6',
  pg: '8.23.1',
  'reflect-metadata': '0.2.2',
  rxjs: '7.8.2',
  '@types/node': '20.19.43',
} as const;

/** The NestJS packages of one release, lockstep as Nest publishes them. */
function nest(version: string, typeorm: string, terminus: string): Record<string, string> {
  return {
    '@nestjs/common': version,
    '@nestjs/core': version,
    '@nestjs/platform-express': version,
    '@nestjs/typeorm': typeorm,
    '@nestjs/terminus': terminus,
  };
}

export const CELLS: readonly CompatCell[] = [
  {
    name: 'lowest',
    covers: 'every lower bound, with mysql2 3.15.3, pg 8.5.1, rxjs 7.2.0, reflect-metadata 0.2.0',
    packages: {
      typeorm: '0.3.20',
      ...nest('10.3.2', '10.0.2', '10.2.2'),
      mysql2: '3.15.3',
      pg: '8.5.1',
      'reflect-metadata': '0.2.0',
      rxjs: '7.2.0',
      '@types/node': LATEST['@types/node'],
    },
  },
  {
    name: 't03_n11',
    covers: 'TypeORM 0.3 latest x NestJS 11 latest',
    packages: { typeorm: '0.3.31', ...nest('11.2.10', '11.0.3', '11.1.1'), ...LATEST },
  },
  {
    name: 't03_n12',
    covers: 'TypeORM 0.3 latest x the lower bounds of NestJS 12',
    packages: { typeorm: '0.3.31', ...nest('12.0.1', '12.0.1', '12.0.0'), ...LATEST },
  },
  {
    name: 't100_n11',
    covers: 'the lower bounds of TypeORM 1 and NestJS 11',
    packages: { typeorm: '1.0.0', ...nest('11.0.0', '11.0.1', '11.0.0'), ...LATEST },
  },
  {
    name: 't1_n10',
    covers: 'TypeORM 1 latest x NestJS 10 latest',
    packages: { typeorm: '1.1.1', ...nest('10.4.22', '11.0.3', '11.1.1'), ...LATEST },
  },
  {
    name: 't1_n12',
    covers: 'TypeORM 1 latest x NestJS 12 latest',
    packages: { typeorm: '1.1.1', ...nest('12.5.1', '12.0.2', '12.1.0'), ...LATEST },
  },
];
