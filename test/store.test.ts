/**
 * Format 3's content store (FORMAT.md "Format 3"), in-process with the real files component: a
 * tree round-trips exactly from pieces; a second backup opens none of the unchanged files and
 * writes no piece; a grown file adds only its new pieces; a damaged piece is named with every
 * set that uses it by verify, and refuses the restore of those sets only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { filesComponent } from '../agent/components/files.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { storeOfTarget, storedFiles, storeFilesOf, PACKED_MAX, PIECE_SIZE } from '../common/store.js';
import { rewriteStored } from './helpers/store-sets.js';
import { verifyAllSets, verifySet } from '../coordinator/sets.js';

/** Everything restore promises to bring back, per path: type, mode, owner, ns mtime, content, link target, inode sharing. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const inodes = new Map<bigint, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    const meta = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out[rel] = `link ${await fsp.readlink(p)} ${meta} ${st.mtimeNs}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${meta} ${st.mtimeNs}`;
      for (const n of (await fsp.readdir(p)).sort()) await walk(path.join(p, n));
    } else {
      const first = inodes.get(st.ino);
      if (!first) inodes.set(st.ino, rel);
      const blocks = st.blocks * 512n < st.size ? 'sparse' : 'dense';
      out[rel] = `file ${meta} ${st.mtimeNs} ${st.size} ${blocks} ${first ? `link of ${first}` : (await fsp.readFile(p)).toString('base64').slice(0, 64) + ':' + (await fsp.readFile(p)).length}`;
    }
  };
  await walk(root);
  return out;
}

const pieceCountOf = (target: string) => [...storedFiles(storeOfTarget(target))].length;
const noEvents = () => undefined;

test('format 3: exact round trip from pieces, unchanged files not read, only new pieces written, damaged pieces named with their sets', async () => {
  const root = tempDir('store-src');
  const conf = path.join(root, 'conf');
  await fsp.mkdir(path.join(conf, 'sub/deeper'), { recursive: true });
  for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(conf, 'sub', `f${String(i).padStart(3, '0')}.cfg`), `setting_${i} = ${'x'.repeat(i)}\n`, { mode: 0o640 });
  await fsp.writeFile(path.join(conf, 'empty'), '');
  await fsp.writeFile(path.join(conf, 'sub/deeper/big.bin'), randomBytes(2 * PIECE_SIZE + 12345));
  await fsp.writeFile(path.join(conf, 'same-a.txt'), 'identical content\n');
  await fsp.writeFile(path.join(conf, 'same-b.txt'), 'identical content\n');
  await fsp.link(path.join(conf, 'same-a.txt'), path.join(conf, 'hard-link.txt'));
  await fsp.symlink('sub/f001.cfg', path.join(conf, 'current.cfg'));
  // A sparse file: data, a 4 MiB hole, data.
  const sparse = await fsp.open(path.join(conf, 'sparse.img'), 'w');
  await sparse.write(Buffer.alloc(8192, 7), 0, 8192, 0);
  await sparse.write(Buffer.alloc(8192, 9), 0, 8192, 4 << 20);
  await sparse.close();
  await fsp.chown(path.join(conf, 'sub/f002.cfg'), 1234, 4321);
  await fsp.utimes(path.join(conf, 'sub/f003.cfg'), 1_600_000_000.123456, 1_600_000_000.123456);
  const rt = runtimeOf([filesComponent('haproxy', [conf])]);
  const target = tempDir('store-target');

  // 1. First backup: every file read once; identical content stored once.
  const first = await backupLocal(rt, target, [], { format: 3 });
  assert.equal(first.manifest.status, 'complete', first.manifest.reasons.join('; '));
  assert.equal(first.manifest.format, 'lsbackup-set/3');
  const part = first.manifest.parts[0]!;
  assert.deepEqual(part.artifacts.map((a) => [path.basename(a.path), a.kind]), [['files.tree.jsonl.gz', 'tree']]);
  const files = part.entries.filter((e) => e.type === 'file' && !e.linkOf);
  const distinct = new Set(files.flatMap((e) => e.pieces ?? []));
  assert.equal(pieceCountOf(target), new Set(files.flatMap(storeFilesOf)).size, 'one store file per distinct large piece, one pack for the small files');
  assert.equal(new Set(files.filter((e) => e.pack).map((e) => e.pack)).size, 1, 'the small files share one pack');
  assert.ok(files.every((e) => (e.pack !== undefined) === (e.size > 0 && e.size <= PACKED_MAX)), 'files of 1 byte to 64 KiB are packed, others not');
  assert.ok(distinct.size < files.flatMap((e) => e.pieces ?? []).length, 'same-a.txt and same-b.txt share their piece');
  assert.equal(part.entries.find((e) => e.path.endsWith('big.bin'))!.pieces!.length, 3);
  assert.ok(part.entries.find((e) => e.path.endsWith('sparse.img'))!.dataExtents, 'the sparse file has its extents');
  assert.ok((part.newBytes ?? 0) > 2 * PIECE_SIZE, `newBytes ${part.newBytes} counts the pieces`);
  // Piece files are gzip, owner-only: zcat reads them.
  const bigId = part.entries.find((e) => e.path.endsWith('big.bin'))!.pieces![0]!;
  const pieceFile = storeOfTarget(target).pieceFile(bigId);
  assert.equal((await fsp.stat(pieceFile)).mode & 0o777, 0o600);
  assert.equal(gunzipSync(await fsp.readFile(pieceFile)).length, PIECE_SIZE);

  // 2. Nothing changed: no file opened, no piece written, only the listing is new.
  const piecesBefore = pieceCountOf(target);
  const second = await backupLocal(rt, target, [], { format: 3, parentId: first.id });
  assert.equal(second.manifest.status, 'complete', second.manifest.reasons.join('; '));
  const fileCount = part.entries.filter((e) => e.type === 'file' && !e.linkOf).length;
  assert.ok(second.events.some((e) => e.message === `files: ${fileCount} of ${fileCount} files unchanged since ${first.id}, not read`), JSON.stringify(second.events.map((e) => e.message).filter(Boolean)));
  assert.equal(pieceCountOf(target), piecesBefore);
  const listing = second.manifest.parts[0]!.artifacts[0]!.size;
  assert.equal(second.manifest.parts[0]!.newBytes, listing, 'the listing is all a backup of an unchanged tree adds');
  assert.deepEqual(second.manifest.parts[0]!.entries.map((e) => [e.path, e.sha256, e.pieces, e.pack, e.packAt]), part.entries.map((e) => [e.path, e.sha256, e.pieces, e.pack, e.packAt]));

  // 3. A file grows at its end and one small file changes: only their new pieces are written.
  await fsp.appendFile(path.join(conf, 'sub/deeper/big.bin'), randomBytes(1000));
  await fsp.writeFile(path.join(conf, 'sub/f010.cfg'), 'changed\n');
  const third = await backupLocal(rt, target, [], { format: 3, parentId: second.id });
  assert.equal(third.manifest.status, 'complete', third.manifest.reasons.join('; '));
  assert.equal(pieceCountOf(target), piecesBefore + 2, 'the last piece of big.bin and a pack for the new f010.cfg');
  const bigNow = third.manifest.parts[0]!.entries.find((e) => e.path.endsWith('big.bin'))!;
  assert.deepEqual(bigNow.pieces!.slice(0, 2), part.entries.find((e) => e.path.endsWith('big.bin'))!.pieces!.slice(0, 2));

  // 4. Restore the first set over a wiped tree: everything as it was, to the nanosecond.
  const expected = await snapshot(conf);
  await fsp.writeFile(path.join(conf, 'sub/deeper/big.bin'), 'x');
  await fsp.rm(path.join(conf, 'sub/f010.cfg'));
  await fsp.writeFile(path.join(conf, 'sub/f010.cfg'), 'changed\n');
  const restoredThird = await restoreLocal(rt, target, third.id);
  assert.deepEqual(restoredThird.results.map((r) => r.status), ['ok'], JSON.stringify(restoredThird.results));
  const got = await snapshot(conf);
  for (const k of Object.keys(expected)) if (k !== '.' ) assert.equal(got[k], expected[k], k);

  // 5. A damaged piece that every set uses (f001.cfg never changed): verify names it with all three sets.
  // f001.cfg is in the pack with the other small files: only its bytes there change.
  const f001 = part.entries.find((e) => e.path.endsWith('sub/f001.cfg'))!;
  const shared = f001.pieces![0]!;
  await rewriteStored(storeOfTarget(target), f001, Buffer.from('setting_1 = y\n')); // same size, other bytes
  const all = await verifyAllSets(target, noEvents);
  assert.equal(all.status, 'failed');
  assert.equal(all.reasons!.filter((r) => r.includes('used by')).length, 1, `only f001.cfg's piece is bad: ${all.reasons!.join('\n')}`);
  const line = all.reasons!.find((r) => r.startsWith(`piece ${shared} in pack ${f001.pack}`));
  assert.ok(line?.includes(`used by sets ${[first.id, second.id, third.id].join(', ')}`), all.reasons!.join('\n'));
  for (const id of [first.id, third.id]) {
    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['failed']);
    assert.match(r.results[0]!.reason, /f001\.cfg: piece [0-9a-f]{64} is damaged/);
  }
  // A piece only the third set uses (the new tail of big.bin): the first set does not use it and restores.
  await rewriteStored(storeOfTarget(target), f001, Buffer.from('setting_1 = x\n'));
  const tail = bigNow.pieces![2]!;
  await fsp.rm(storeOfTarget(target).pieceFile(tail));
  assert.equal((await verifySet(target, first.id, noEvents)).status, 'ok');
  const v3 = await verifySet(target, third.id, noEvents);
  assert.deepEqual(v3.reasons, [`node1/haproxy/files.tree.jsonl.gz: ${bigNow.path}: piece ${tail} is missing from the store`]);
  const r1 = await restoreLocal(rt, target, first.id);
  assert.deepEqual(r1.results.map((x) => x.status), ['ok'], JSON.stringify(r1.results));
  // Nothing of the store is left half-written.
  for (const ab of readdirSync(storeOfTarget(target).dataDir)) assert.deepEqual(readdirSync(path.join(storeOfTarget(target).dataDir, ab)).filter((n) => n.endsWith('.tmp')), []);
});
