import { defaultRunOwner } from '../../src/cli/commands/run';
import { formatTable } from '../../src/cli/format-table';

describe('formatTable', () => {
  it('aligns columns, two spaces apart, without trailing blanks', () => {
    expect(
      formatTable(
        ['key', 'owner'],
        [
          ['host(7)', 'A'],
          ['k', 'PHID-LONG'],
        ],
      ),
    ).toBe('key      owner\nhost(7)  A\nk        PHID-LONG\n');
  });

  it('quotes a cell with a newline so the table stays one row per lock', () => {
    expect(formatTable(['key'], [['a\nb']])).toBe('key\n"a\\nb"\n');
  });
});

describe('run --owner default', () => {
  it('is slotlock-run(<hostname>:<pid>), the hostname shortened to fit 64 bytes', () => {
    expect(defaultRunOwner('build7', 4242)).toBe('slotlock-run(build7:4242)');
    const long = defaultRunOwner('h'.repeat(100), 4242);
    expect(Buffer.byteLength(long)).toBe(64);
    expect(long).toMatch(/^slotlock-run\(h+:4242\)$/);
  });
});
