/**
 * Packs (FORMAT.md "Packs", 3.1): small files share gzip packs in the store. A tree of a few
 * thousand small files, shaped as a node's configuration and plugin trees are (many files of
 * 0-4 KiB, some identical, one at the 64 KiB bound and one past it), is backed up, restored exactly
 * and verified; a damaged pack is named once with the sets that use it, and only those refuse to
 * restore; a prune frees a pack only once no set names any file in it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, statSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { rng } from '../bench/data.js';
import { filesComponent } from '../agent/components/files.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { rewriteStored } from './helpers/store-sets.js';
import { PACKED_MAX, PACK_SIZE, packName, storeFilesOf, storeOfTarget, storedFiles } from '../common/store.js';
import { entryProblem, type Entry } from '../common/manifest.js';
import { verifyAllSets, verifySet } from '../coordinator/sets.js';
import { prune } from '../coordinator/prune.js';
import { AgentPool } from '../coordinator/agents.js';
import { clientCredentials } from '../common/tls.js';

async function state(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    const meta = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeNs}`;
    if (st.isDirectory()) {
      if (rel !== '.') out.set(rel, `dir ${meta}`);
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out.set(rel, `file ${meta} ${st.size} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`);
  };
  await walk(root);
  return out;
}

const filesOf = (entries: Entry[]) => entries.filter((e) => e.type === 'file' && !e.linkOf);

test('packs: small files share gzip packs, restore exactly, a damaged pack is named once with its sets, a pack is freed when no set names a file in it', async () => {
  const rand = rng(3101);
  const root = tempDir('packs-src');
  const conf = path.join(root, 'etc/grafana');
  const lines = (n: number) => Array.from({ length: n }, (_, i) => `key_${i} = ${Math.floor(rand() * 1e9).toString(36)}`).join('\n');
  for (let d = 0; d < 20; d++) {
    await fsp.mkdir(path.join(conf, `plugins/p${d}`), { recursive: true });
    for (let f = 0; f < 150; f++) await fsp.writeFile(path.join(conf, `plugins/p${d}/f${f}.json`), lines(Math.floor(rand() * 120)), { mode: 0o640 });
  }
  await fsp.writeFile(path.join(conf, 'same-a.ini'), 'identical\n');
  await fsp.writeFile(path.join(conf, 'same-b.ini'), 'identical\n');
  await fsp.writeFile(path.join(conf, 'at-bound.bin'), Buffer.alloc(PACKED_MAX, 'a'));
  await fsp.writeFile(path.join(conf, 'past-bound.bin'), Buffer.alloc(PACKED_MAX + 1, 'b'));
  await fsp.writeFile(path.join(conf, 'empty'), '');
  const rt = runtimeOf([filesComponent('grafana', [conf])]);
  const target = tempDir('packs-target');
  const store = () => storeOfTarget(target);

  // 1. The first backup: every small file in a pack, several packs, each a gzip of its pieces.
  const a = await backupLocal(rt, target, [], { format: 3 });
  assert.equal(a.manifest.status, 'complete', a.manifest.reasons.join('; '));
  const aFiles = filesOf(a.manifest.parts[0]!.entries);
  for (const e of aFiles) assert.equal(e.pack !== undefined, e.size > 0 && e.size <= PACKED_MAX, `${e.path} (${e.size} bytes) packed iff 1 byte to 64 KiB`);
  const packs = new Set(aFiles.flatMap((e) => (e.pack ? [e.pack] : [])));
  const smallBytes = aFiles.filter((e) => e.pack).reduce((s, e) => s + e.size, 0);
  assert.ok(packs.size >= Math.floor(smallBytes / (PACK_SIZE + PACKED_MAX)) && packs.size <= Math.ceil(smallBytes / PACK_SIZE), `${packs.size} packs for ${smallBytes} bytes of small files`);
  const same = aFiles.filter((e) => /same-[ab]\.ini$/.test(e.path));
  assert.deepEqual([same[0]!.pack, same[0]!.packAt], [same[1]!.pack, same[1]!.packAt], 'the same bytes twice are stored once');
  assert.equal([...storedFiles(store())].length, new Set(aFiles.flatMap(storeFilesOf)).size, 'the store holds the packs and the one large piece, nothing else');
  for (const pack of packs) {
    const file = store().pieceFile(packName(pack));
    assert.equal(statSync(file).mode & 0o777, 0o600, 'a pack is owner-only');
    const content = gunzipSync(await fsp.readFile(file));
    assert.ok(content.length <= PACK_SIZE + PACKED_MAX, `pack of ${content.length} bytes`);
    for (const e of aFiles.filter((x) => x.pack === pack)) assert.equal(createHash('sha256').update(content.subarray(e.packAt!, e.packAt! + e.size)).digest('hex'), e.sha256, `${e.path} lies where its line says`);
  }
  const expectA = await state(conf);

  // 2. One file changed, one deleted: the unchanged lines keep their packs, one new pack holds the change.
  const changed = aFiles.find((e) => e.path.endsWith('plugins/p3/f7.json'))!;
  await fsp.writeFile(changed.path, 'changed = yes\n');
  await fsp.rm(path.join(conf, 'plugins/p4/f9.json'));
  const b = await backupLocal(rt, target, [], { format: 3, parentId: a.id });
  assert.equal(b.manifest.status, 'complete', b.manifest.reasons.join('; '));
  const bFiles = filesOf(b.manifest.parts[0]!.entries);
  const bChanged = bFiles.find((e) => e.path === changed.path)!;
  assert.ok(bChanged.pack && !packs.has(bChanged.pack), 'the changed file is in a new pack');
  const byPath = new Map(aFiles.map((e) => [e.path, e]));
  for (const e of bFiles) if (e !== bChanged) assert.deepEqual([e.pack, e.packAt, e.pieces], [byPath.get(e.path)!.pack, byPath.get(e.path)!.packAt, byPath.get(e.path)!.pieces], `${e.path} is taken from its parent line`);
  assert.ok(b.events.some((e) => e.message === `files: ${bFiles.length - 1} of ${bFiles.length} files unchanged since ${a.id}, not read`), JSON.stringify(b.events.map((e) => e.message).filter(Boolean)));
  const expectB = await state(conf);

  // 3. Both sets restore exactly over a wiped tree, and verify.
  for (const [set, expect] of [[a, expectA], [b, expectB]] as const) {
    await fsp.rm(conf, { recursive: true, force: true });
    const r = await restoreLocal(rt, target, set.id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
    assert.deepEqual(await state(conf), expect, `set ${set.id} restores exactly`);
  }
  assert.equal((await verifyAllSets(target, () => undefined)).status, 'ok');

  // 4. The new pack damaged (not a gzip any more): verify names it once, with set b only; a restores, b refuses.
  const newPack = store().pieceFile(packName(bChanged.pack!));
  const good = await fsp.readFile(newPack);
  await fsp.writeFile(newPack, Buffer.from('not a gzip'));
  const all = await verifyAllSets(target, () => undefined);
  assert.equal(all.status, 'failed');
  const named = all.reasons!.filter((r) => r.includes('used by'));
  assert.deepEqual(named.map((r) => r.replace(/: pack .* is damaged: .*;/, ': damaged;')), [`pack ${bChanged.pack}: damaged; used by set ${b.id}`], all.reasons!.join('\n'));
  assert.equal((await verifySet(target, a.id, () => undefined)).status, 'ok');
  const refused = await restoreLocal(rt, target, b.id);
  assert.deepEqual(refused.results.map((x) => x.status), ['failed']);
  assert.match(refused.results[0]!.reason, new RegExp(`p3/f7\\.json: pack ${bChanged.pack} is damaged`));
  await fsp.writeFile(newPack, good);

  // 4b. verify --sample picks packs: a piece damaged inside its pack is found when its pack is
  // picked (a share of 1 picks all), not with a share too small to pick any; a missing pack is
  // found at any share, since every pack named is looked up.
  const inFirst = aFiles.find((e) => e.pack === [...packs][0] && e.size > 0)!;
  const firstPackFile = store().pieceFile(packName(inFirst.pack!));
  const firstGood = await fsp.readFile(firstPackFile);
  await rewriteStored(store(), inFirst, Buffer.alloc(inFirst.size, 'z'));
  assert.equal((await verifySet(target, a.id, () => undefined, { sample: 1e-12 })).status, 'ok', 'a share that picks no pack reads none');
  const full = await verifySet(target, a.id, () => undefined, { sample: 1 });
  assert.deepEqual(full.reasons?.filter((r) => r.includes(inFirst.path)).map((r) => r.includes(`piece ${inFirst.pieces![0]} is damaged`)), [true], (full.reasons ?? []).join('\n'));
  await fsp.writeFile(firstPackFile, firstGood);
  await fsp.rename(newPack, `${newPack}.away`);
  const sampled = await verifySet(target, b.id, () => undefined, { sample: 1e-12 });
  assert.ok(sampled.reasons?.some((r) => r.includes(`pack ${bChanged.pack} is missing from the store`)), (sampled.reasons ?? []).join('\n'));
  await fsp.rename(`${newPack}.away`, newPack);
  assert.equal((await verifyAllSets(target, () => undefined)).status, 'ok', 'the store is whole again');

  // 5. A line naming a pack without its place is refused as it is read, naming the key.
  assert.equal(entryProblem({ ...bChanged, packAt: undefined }, new Set([bChanged.archive]))?.key, 'packAt');
  assert.equal(entryProblem({ ...bChanged, pieces: [] }, new Set([bChanged.archive]))?.key, 'pack');

  // 6. prune --keep-last 1 (b): a's packs stay, since b names files in them. Then a backup in
  // which every file of the first pack is gone, and prune --keep-last 1 again: that pack is freed.
  const pool = new AgentPool(clientCredentials(undefined, true), 1000);
  const grace = 60_000;
  let now = Date.now() + 2 * 3_600_000;
  const request = { target, keepLast: 1, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, dryRun: false, incompleteGraceHours: 0, removeIds: [] };
  const collect = async () => {
    await prune(request, pool, { storeGraceMs: grace, now: new Date(now) });
    now += grace + 1000;
    await prune(request, pool, { storeGraceMs: grace, now: new Date(now) });
    now += grace + 1000;
  };
  await collect();
  const namedBy = (entries: Entry[]) => new Set(filesOf(entries).flatMap(storeFilesOf));
  assert.deepEqual([...storedFiles(store())].sort(), [...namedBy(b.manifest.parts[0]!.entries)].sort(), 'the store holds what b names: all of a\'s packs, and the new one');
  const firstPack = aFiles.find((e) => e.pack)!.pack!;
  for (const e of bFiles.filter((x) => x.pack === firstPack)) await fsp.rm(e.path);
  const c = await backupLocal(rt, target, [], { format: 3, parentId: b.id });
  assert.equal(c.manifest.status, 'complete', c.manifest.reasons.join('; '));
  await collect();
  const left = new Set(storedFiles(store()));
  assert.ok(!left.has(packName(firstPack)), 'the pack none of whose files any set names is freed');
  assert.deepEqual([...left].sort(), [...namedBy(c.manifest.parts[0]!.entries)].sort(), 'the store holds exactly what c names');
  const expectC = await state(conf);
  await fsp.rm(conf, { recursive: true, force: true });
  const r = await restoreLocal(rt, target, c.id);
  assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
  assert.deepEqual(await state(conf), expectC, 'the kept set restores exactly after the collection');
});
