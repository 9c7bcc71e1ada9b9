/** The keys of one batch: `size` distinct ASCII keys of exactly `keyBytes` bytes each. */
export function batchKeys(size: number, keyBytes: number, tag: string): string[] {
  return Array.from({ length: size }, (_, i) => {
    const head = `batch(${tag}).key(${i}).`;
    return head.length >= keyBytes ? head : head + 'x'.repeat(keyBytes - head.length);
  });
}

export function batchOwner(tag: string): string {
  return `PHID-BATCH-${tag}`;
}
