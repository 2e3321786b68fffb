/**
 * Sets of format 2 (tar trees, FORMAT.md "Format 2") stay readable, verifiable and restorable
 * after format 3, and a target holding both works: a format-3 backup never takes a format-2 set
 * as its parent (it has no pieces), and verify of every set checks each in its own format.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { filesComponent } from '../agent/components/files.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { verifyAllSets, verifySet } from '../coordinator/sets.js';
import { parentSetOf } from '../coordinator/parent.js';
import { FORMAT, FORMAT_2 } from '../common/manifest.js';

test('a format-2 set beside format-3 ones: verified, restored, never a parent', async () => {
  const conf = path.join(tempDir('f2-src'), 'conf');
  await fsp.mkdir(path.join(conf, 'd'), { recursive: true });
  for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(conf, 'd', `f${i}`), `line ${i}\n`.repeat(i + 1));
  const rt = runtimeOf([filesComponent('haproxy', [conf])]);
  const target = tempDir('f2-target');

  const old = await backupLocal(rt, target, [], { format: 2 });
  assert.equal(old.manifest.format, FORMAT_2);
  assert.deepEqual(old.manifest.parts[0]!.artifacts.map((a) => a.kind).sort(), ['entries', 'tar']);
  assert.equal(await parentSetOf(target, '99991231T000000Z'), '', 'a format-2 set is no parent');

  const next = await backupLocal(rt, target, [], { format: 3, parentId: await parentSetOf(target, '99991231T000000Z') });
  assert.equal(next.manifest.format, FORMAT);
  assert.ok(!next.events.some((e) => /unchanged since/.test(e.message ?? '')), 'no parent: every file read');
  assert.equal(await parentSetOf(target, '99991231T000000Z'), next.id);

  assert.equal((await verifySet(target, old.id, () => undefined)).status, 'ok');
  const all = await verifyAllSets(target, () => undefined);
  assert.equal(all.status, 'ok', (all.reasons ?? []).join('\n'));

  const content = await fsp.readFile(path.join(conf, 'd/f7'), 'utf8');
  await fsp.rm(path.join(conf, 'd'), { recursive: true });
  const r = await restoreLocal(rt, target, old.id);
  assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
  assert.equal(await fsp.readFile(path.join(conf, 'd/f7'), 'utf8'), content);
});
