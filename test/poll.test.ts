import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pollUntil } from '../common/poll.js';

test('pollUntil returns the first value a step gives, waiting longer between tries up to maxMs', async () => {
  const at: number[] = [];
  const v = await pollUntil(Date.now() + 10_000, { everyMs: 20, maxMs: 45 }, async () => {
    at.push(Date.now());
    return at.length === 5 ? 'ready' : undefined;
  });
  assert.equal(v, 'ready');
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  // 20, 30, 45, 45 ms asked; timers may fire a little late, never early.
  assert.ok(gaps[0]! >= 19 && gaps[1]! >= 29 && gaps[2]! >= 44 && gaps[3]! >= 44, `gaps ${gaps.join(', ')}`);
  assert.ok(gaps[3]! < gaps[2]! + 40, `waits stop growing at maxMs: gaps ${gaps.join(', ')}`);
});

test('pollUntil gives undefined only after a try that ended past the deadline', async () => {
  const deadline = Date.now() + 100;
  let last = 0;
  const v = await pollUntil(deadline, { everyMs: 30 }, async () => {
    last = Date.now();
    return undefined;
  });
  assert.equal(v, undefined);
  assert.ok(last >= deadline, `the last try was ${deadline - last} ms before the deadline`);
});

test('pollUntil stops waiting when its signal aborts', async () => {
  const abort = new AbortController();
  setTimeout(() => abort.abort(), 50);
  const t0 = Date.now();
  await assert.rejects(pollUntil(Date.now() + 60_000, { everyMs: 10_000, signal: abort.signal }, async () => undefined), { name: 'AbortError' });
  assert.ok(Date.now() - t0 < 5_000);
});
