/**
 * Runs `fn` over `items`, at most `limit` at a time. After the first failure no new item starts;
 * the running ones are waited for (nothing may still be writing when the caller cleans up or
 * reports), then the first failure is thrown.
 */
export async function forEachBounded<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const lanes = Math.max(1, Math.min(limit, items.length));
  const settled = await Promise.allSettled(Array.from({ length: lanes }, lane));
  const bad = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason;
}
