/**
 * Loaded first by `drydock-slotlock/nest`: checks that the NestJS packages it builds on
 * can be loaded before anything requires them, so that a missing one gives one error
 * naming every package to install, not Node's "Cannot find module" for the first.
 */

/** What `drydock-slotlock/nest` loads, in the order a user would install them. */
export const NEST_PEERS: readonly string[] = ['@nestjs/common', '@nestjs/core', '@nestjs/typeorm', 'rxjs'];

/** Peers that cannot be loaded, and why. */
export interface UnusablePeers {
  /** Not installed where this package can find them. */
  readonly missing: readonly string[];
  /** Installed, but in a release that only `import` can load (e.g. @nestjs/typeorm 12.0.0). */
  readonly importOnly: readonly string[];
}

/** Which of `peers` cannot be loaded with `require` from this package's folder. */
export function unusablePeers(
  peers: readonly string[],
  resolve: (name: string) => string = require.resolve,
): UnusablePeers {
  const missing: string[] = [];
  const importOnly: string[] = [];
  for (const name of peers) {
    try {
      resolve(name);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === 'MODULE_NOT_FOUND') missing.push(name);
      else if (code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') importOnly.push(name);
      else throw error;
    }
  }
  return { missing, importOnly };
}

/** The one error `drydock-slotlock/nest` throws when some of its peers cannot be loaded, or undefined. */
export function unusablePeersError({ missing, importOnly }: UnusablePeers): Error | undefined {
  const problems: string[] = [];
  if (missing.length > 0) {
    problems.push(
      `${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not installed: npm install ${missing.join(' ')}`,
    );
  }
  if (importOnly.length > 0) {
    problems.push(
      `${importOnly.join(', ')} in a release that require() cannot load: npm install ${importOnly.map((name) => `${name}@latest`).join(' ')}`,
    );
  }
  if (problems.length === 0) return undefined;
  return new Error(
    `drydock-slotlock/nest needs ${problems.join('; and ')} (the root entry, drydock-slotlock, works without NestJS)`,
  );
}

const error = unusablePeersError(unusablePeers(NEST_PEERS));
if (error !== undefined) throw error;
