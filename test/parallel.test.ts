import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachBounded } from '../common/parallel.js';

test('forEachBounded runs at most `limit` at once and every item once', async () => {
  let running = 0;
  let peak = 0;
  const done: number[] = [];
  await forEachBounded([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    peak = Math.max(peak, ++running);
    await sleep(5 + (n % 3) * 5);
    running--;
    done.push(n);
  });
  assert.equal(peak, 3);
  assert.deepEqual(done.sort(), [1, 2, 3, 4, 5, 6, 7]);
});

test('after a failure forEachBounded starts nothing new, waits for the running items, then throws the failure', async () => {
  const started: string[] = [];
  const finished: string[] = [];
  await assert.rejects(
    forEachBounded(['fails', 'slow', 'never'], 2, async (name) => {
      started.push(name);
      if (name === 'fails') throw new Error('pg_restore of database fails');
      await sleep(30);
      finished.push(name);
    }),
    /pg_restore of database fails/,
  );
  assert.deepEqual(started, ['fails', 'slow']);
  assert.deepEqual(finished, ['slow'], 'the running item finished before the failure was thrown');
});
