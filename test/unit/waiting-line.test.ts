/**
 * The waiting line's own bookkeeping (no database: the line only decides who tries when;
 * test/integration/slot-waiting-line.test.ts runs it against the three engines).
 */
import { WaitingLine, WaitingLines } from '../../src/waiting/waiting-line';

const FAR = (): number => Date.now() + 60_000;
const LONG_PAUSE_MS = 60_000;

/** Whether `promise` settled within a few turns of the event loop. */
async function settledSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

describe('WaitingLine', () => {
  test('a release goes to the first in line only; the next moves up when the first leaves, and takes the next release', async () => {
    const line = new WaitingLine();
    const first = line.join();
    const second = line.join();
    const firstTurn = first.turn(LONG_PAUSE_MS, FAR(), undefined);
    const secondTurn = second.turn(LONG_PAUSE_MS, FAR(), undefined);
    line.released(1);
    expect(await settledSoon(firstTurn)).toBe(true);
    expect(await settledSoon(secondTurn)).toBe(false);
    first.trying(); // and took the slot
    first.leave();
    expect(await settledSoon(secondTurn)).toBe(false); // moved up, but no release is waiting for it
    line.released(1);
    expect(await settledSoon(secondTurn)).toBe(true);
    second.leave();
    expect(line.isEmpty).toBe(true);
  });

  test('a release while the first is trying is kept for its next turn; releases beyond the line are not kept for later callers', async () => {
    const line = new WaitingLine();
    const first = line.join();
    line.released(3); // first is trying (no turn asked): one release per place in line is kept
    expect(await settledSoon(first.turn(LONG_PAUSE_MS, FAR(), undefined))).toBe(true);
    expect(await settledSoon(first.turn(LONG_PAUSE_MS, FAR(), undefined))).toBe(false);
    first.leave();

    const later = line.join();
    expect(await settledSoon(later.turn(LONG_PAUSE_MS, FAR(), undefined))).toBe(false);
    later.leave();
  });

  test('nudges of one tick count once, and wake the first in line, or its next turn when it was trying; never a caller behind it', async () => {
    const line = new WaitingLine();
    const first = line.join();
    const second = line.join();
    const secondTurn = second.turn(LONG_PAUSE_MS, FAR(), undefined);
    line.nudge(); // first is trying
    line.nudge(); // the same notification, through another subscription
    await Promise.resolve();
    expect(await settledSoon(first.turn(LONG_PAUSE_MS, FAR(), undefined))).toBe(true);
    const firstTurn = first.turn(LONG_PAUSE_MS, FAR(), undefined);
    expect(await settledSoon(firstTurn)).toBe(false); // counted once
    line.nudge();
    expect(await settledSoon(firstTurn)).toBe(true);
    expect(await settledSoon(secondTurn)).toBe(false);
    first.leave();
    second.leave();
  });

  test('a place that leaves with the release its turn came with, before trying, passes it to the next', async () => {
    const line = new WaitingLine();
    const first = line.join();
    const second = line.join();
    const firstTurn = first.turn(LONG_PAUSE_MS, FAR(), undefined);
    const secondTurn = second.turn(LONG_PAUSE_MS, FAR(), undefined);
    line.released(1);
    await firstTurn;
    first.leave(); // aborted before its try
    expect(await settledSoon(secondTurn)).toBe(true);
    second.trying(); // this one tried: leaving passes nothing on
    const third = line.join();
    const thirdTurn = third.turn(LONG_PAUSE_MS, FAR(), undefined);
    second.leave();
    expect(await settledSoon(thirdTurn)).toBe(false);
    third.leave();
  });

  test('a deadline beyond what a timer can hold (waitMs: Infinity) does not wake a caller behind the first', async () => {
    const line = new WaitingLine();
    const first = line.join();
    const second = line.join();
    const secondTurn = second.turn(LONG_PAUSE_MS, Infinity, undefined);
    expect(await settledSoon(secondTurn)).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await settledSoon(secondTurn)).toBe(false);
    first.leave();
    second.leave();
  });

  test('the first in line tries again after its pause; a caller behind it only at its deadline; an abort rejects with the reason', async () => {
    const line = new WaitingLine();
    const first = line.join();
    const second = line.join();
    const third = line.join();
    const started = Date.now();
    const firstTurn = first.turn(30, FAR(), undefined);
    const secondTurn = second.turn(30, Date.now() + 80, undefined);
    const controller = new AbortController();
    const thirdTurn = third.turn(30, FAR(), controller.signal);
    await firstTurn;
    expect(await settledSoon(secondTurn)).toBe(false);
    await secondTurn;
    expect(Date.now() - started).toBeGreaterThanOrEqual(75);
    controller.abort(new Error('stop'));
    await expect(thirdTurn).rejects.toThrow('stop');
    for (const place of [first, second, third]) place.leave();
    expect(line.isEmpty).toBe(true);
  });
});

describe('WaitingLines', () => {
  test("a release by an owner who took slots here moves the line of each family it held; a release in the caller's transaction does not", async () => {
    const lines = new WaitingLines();
    const licences = lines.use('2 licence');
    const hosts = lines.use('4 host');
    const licencePlace = licences.join();
    const hostPlace = hosts.join();
    const licenceTurn = licencePlace.turn(LONG_PAUSE_MS, FAR(), undefined);
    const hostTurn = hostPlace.turn(LONG_PAUSE_MS, FAR(), undefined);

    lines.took('PHID-A', '4 host');
    lines.releasedBy('PHID-A', false);
    expect(await settledSoon(hostTurn)).toBe(false);
    lines.releasedBy('PHID-A', true); // forgotten by the first release
    expect(await settledSoon(hostTurn)).toBe(false);

    lines.took('PHID-B', '2 licence');
    lines.releasedBy('PHID-B', true);
    expect(await settledSoon(licenceTurn)).toBe(true);
    expect(await settledSoon(hostTurn)).toBe(false);

    licencePlace.leave();
    hostPlace.leave();
    expect(await settledSoon(hostTurn)).toBe(true); // leaving ends the turn awaited

    // The line lives while a call uses it: a new call of the family gets the same line.
    expect(lines.use('4 host')).toBe(hosts);
    lines.done('4 host');
    lines.done('4 host');
    expect(lines.use('4 host')).not.toBe(hosts);
  });
});
