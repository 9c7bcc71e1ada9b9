/**
 * Small timing helpers for the waiting tests (SPEC 10): when a promise settled, and how.
 */

/** A promise watched from the moment it was made: whether and when it settled. */
export interface Tracked<T> {
  /** The promise itself, never rejecting: resolves to the outcome once settled. */
  readonly done: Promise<Outcome<T>>;
  /** The outcome once settled, else undefined. */
  readonly outcome: () => Outcome<T> | undefined;
}

/** How a tracked promise settled, and when (`Date.now()`). */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T; readonly at: number }
  | { readonly ok: false; readonly error: unknown; readonly at: number };

/** Watches `promise`: its outcome and the time it settled. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  let outcome: Outcome<T> | undefined;
  const done = promise.then(
    (value) => (outcome = { ok: true, value, at: Date.now() }),
    (error: unknown) => (outcome = { ok: false, error, at: Date.now() }),
  );
  return { done, outcome: () => outcome };
}

/** The error a tracked promise rejected with (throws when it resolved). */
export async function rejection(tracked: Tracked<unknown>): Promise<{ error: unknown; at: number }> {
  const outcome = await tracked.done;
  if (outcome.ok) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome;
}

/** The value a tracked promise resolved to (rethrows its error when it rejected). */
export async function resolution<T>(tracked: Tracked<T>): Promise<{ value: T; at: number }> {
  const outcome = await tracked.done;
  if (!outcome.ok) throw outcome.error;
  return outcome;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes; resolves to its last answer. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
}
