/**
 * Sets of format 1 (entries in the manifest, zip trees), written by lsbackup before format 2, stay
 * readable, verifiable and restorable (FORMAT.md "Format 2"). The fixture was written by the
 * previous release (commit bdfb565) from this tree, then copied into test/fixtures/format1-set:
 *
 *   /tmp/lsbackup-format1-fixture/etc/app/       mtime 1700000005.523456789
 *     app.conf       "listen 8080\n", 0640      mtime 1700000002.223456789
 *     current.conf   -> app.conf (symlink)      mtime 1700000001.123456789
 *     sub/           mtime 1700000004.423456789
 *       b.conf       "nested\n", owner 1001:1002, hard-linked as b-link.conf, mtime 1700000003.323456789
 *       big.txt      3000 times "x"              mtime 1700000002.223456789
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesComponent } from '../agent/components/files.js';
import { FORMAT_1, readManifest } from '../common/manifest.js';
import { setFiles, verifySet } from '../coordinator/sets.js';
import { restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ID = '20261202T035936Z';
const ROOT = '/tmp/lsbackup-format1-fixture/etc/app';
let target = '';

before(async () => {
  target = tempDir('format1-target');
  execFileSync('cp', ['-a', path.join(repoRoot, 'test/fixtures/format1-set', ID), target]);
  // git keeps no owner-only modes: the set is made owner-only as lsbackup writes it.
  execFileSync('chmod', ['-R', 'go-rwx', path.join(target, ID)]);
});
after(async () => {
  await fsp.rm(target, { recursive: true, force: true });
  await fsp.rm(path.dirname(path.dirname(ROOT)), { recursive: true, force: true });
});

test('a format-1 set is read with its entries, verified entry by entry and listed by show --files', async () => {
  const m = await readManifest(target, ID);
  assert.equal(m.format, FORMAT_1);
  assert.equal(m.parts[0]!.entries!.length, 7);
  assert.equal(m.parts[0]!.entryCount, 7);
  const summary = await verifySet(target, ID, () => undefined);
  assert.equal(summary.status, 'ok', (summary.reasons ?? []).join('; '));
  const lines: string[] = [];
  for await (const chunk of setFiles(target, ID, {})) lines.push(...chunk);
  assert.deepEqual(lines.map((l) => JSON.parse(l).path).sort(), [ROOT, ...['app.conf', 'current.conf', 'sub', 'sub/b-link.conf', 'sub/b.conf', 'sub/big.txt'].map((r) => path.join(ROOT, r))].sort());
});

test('a format-1 set restores exactly into a wiped tree', async () => {
  await fsp.rm(path.dirname(path.dirname(ROOT)), { recursive: true, force: true });
  const rt = runtimeOf([filesComponent('haproxy', [ROOT])]);
  const r = await restoreLocal(rt, target, ID);
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  const st = async (rel: string) => fsp.lstat(path.join(ROOT, rel), { bigint: true });
  assert.equal(await fsp.readFile(path.join(ROOT, 'app.conf'), 'utf8'), 'listen 8080\n');
  assert.equal(Number((await st('app.conf')).mode & 0o7777n), 0o640);
  assert.equal((await st('app.conf')).mtimeNs, 1700000002223456789n);
  assert.equal(await fsp.readlink(path.join(ROOT, 'current.conf')), 'app.conf');
  assert.equal((await st('current.conf')).mtimeNs, 1700000001123456789n);
  const b = await st('sub/b.conf');
  assert.deepEqual([b.uid, b.gid, b.mtimeNs], [1001n, 1002n, 1700000003323456789n]);
  assert.equal((await st('sub/b-link.conf')).ino, b.ino, 'the hard link comes back as one');
  assert.equal(await fsp.readFile(path.join(ROOT, 'sub/big.txt'), 'utf8'), 'x'.repeat(3000));
  assert.equal((await st('sub')).mtimeNs, 1700000004423456789n);
  assert.equal((await st('.')).mtimeNs, 1700000005523456789n);
});
