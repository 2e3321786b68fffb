/**
 * The coordinator believes a part only from the record its agent wrote on the shared location
 * (FORMAT.md "Format 2"): a record that is missing, differs from the agent's answer, is not JSON,
 * has a wrong type or a missing key, or is another part's, makes that part failed with one line
 * naming the file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { partFromAnswer } from '../common/commit.js';
import { writePartRecord } from '../common/part-record.js';
import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import { tempDir } from './helpers/harness.js';

const part = { node: 'node1', component: 'haproxy' as const, status: 'ok' as const, reason: '', durationMs: 5, bytes: 0, meta: { k: 'v' }, artifacts: [], external: [], entryCount: 0 };

async function answered(setDir: string, text?: string): Promise<ComponentResult> {
  const record = await writePartRecord(setDir, part);
  if (text !== undefined) {
    await fsp.writeFile(path.join(setDir, record.path), text);
    Object.assign(record, { size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') });
  }
  return { ...part, artifacts: [], external: [], record };
}

test('a well-formed record is the part, with the record it came from', async () => {
  const dir = tempDir('records');
  await fsp.mkdir(path.join(dir, 'node1/haproxy'), { recursive: true });
  const r = await answered(dir);
  const p = await partFromAnswer(dir, r);
  assert.equal(p.status, 'ok', p.reason);
  assert.deepEqual(p.meta, { k: 'v' });
  assert.deepEqual(p.record, r.record);
});

test('a missing, changed, truncated, mistyped, incomplete or foreign record fails the part, naming the file', async () => {
  const dir = tempDir('records-bad');
  await fsp.mkdir(path.join(dir, 'node1/haproxy'), { recursive: true });
  const good = JSON.parse(await fsp.readFile(path.join(dir, (await answered(dir)).record!.path), 'utf8'));
  const cases: [string, () => Promise<ComponentResult>, RegExp][] = [
    ['missing', async () => { const r = await answered(dir); await fsp.rm(path.join(dir, r.record!.path)); return r; }, /^node1\/haproxy\/part\.json is not visible to the coordinator/],
    ['changed after the answer', async () => { const r = await answered(dir); await fsp.appendFile(path.join(dir, r.record!.path), ' '); return r; }, /^node1\/haproxy\/part\.json is not the record the agent wrote/],
    ['truncated', () => answered(dir, JSON.stringify(good).slice(0, 40)), /^node1\/haproxy\/part\.json is not valid JSON$/],
    ['a wrong type', () => answered(dir, JSON.stringify({ ...good, bytes: 'many' })), /^node1\/haproxy\/part\.json: key 'bytes': /],
    ['a missing key', () => answered(dir, JSON.stringify({ ...good, entryCount: undefined })), /^node1\/haproxy\/part\.json: key 'entryCount': /],
    ['another part', () => answered(dir, JSON.stringify({ ...good, component: 'kibana' })), /^node1\/haproxy\/part\.json is the record of node1\/kibana$/],
  ];
  for (const [what, make, line] of cases) {
    const p = await partFromAnswer(dir, await make());
    assert.equal(p.status, 'failed', what);
    assert.match(p.reason, line, what);
    assert.equal(p.reason.split('\n').length, 1, what);
    assert.deepEqual(p.artifacts, [], `${what}: nothing of it is believed`);
  }
});
