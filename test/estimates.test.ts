/**
 * The size estimate Info makes for the free-space check is the one the backup right after it
 * reports as its progress total: the tree is walked once, not twice. Taken once, and only while
 * recent; a failing estimate is 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Estimates } from '../agent/estimates.js';
import type { Component } from '../agent/components/component.js';

function counting(name: string, sizes: number[]): { c: Component; calls: () => number } {
  let n = 0;
  const c = { name, estimateBytes: async () => sizes[n++] ?? Promise.reject(new Error('no tree')) } as unknown as Component;
  return { c, calls: () => n };
}

test('estimates: the backup takes the estimate Info made, once; a second backup measures again', async () => {
  const est = new Estimates();
  const { c, calls } = counting('haproxy', [100, 200, 300]);
  assert.equal(await est.measure(c), 100);
  assert.equal(await est.forBackup(c), 100, 'the backup after Info reuses its estimate');
  assert.equal(calls(), 1, 'the tree was walked once for both');
  assert.equal(await est.forBackup(c), 200, 'a second backup without an Info in between measures anew');
  assert.equal(calls(), 2);
});

test('estimates: an old estimate is not reused; a failed one counts 0; components are apart', async () => {
  const est = new Estimates(0);
  const a = counting('haproxy', [10, 20]);
  const b = counting('grafana', []);
  await est.measure(a.c);
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(await est.forBackup(a.c), 20, 'past maxAge the backup measures again');
  assert.equal(await est.measure(b.c), 0, 'a failing estimate is 0, not an error');
  const fresh = new Estimates();
  const h = counting('haproxy', [7]);
  const g = counting('grafana', [9]);
  assert.equal(await fresh.measure(h.c), 7);
  assert.equal(await fresh.forBackup(g.c), 9, "grafana's backup measures its own tree, it does not take haproxy's estimate");
  assert.equal(await fresh.forBackup(h.c), 7, "haproxy's estimate is still there for haproxy's backup");
  assert.equal(h.calls() + g.calls(), 2);
});
