/**
 * Incremental sets (issue 14): thirty format-3 backups of one tree with random changes between
 * them (edits that keep or change the size, deletes, renames, new files, a file replaced by a
 * directory and back, a touched mtime, a chmod, a grown large file), each set the parent of the
 * next; then every set is restored into a wiped tree and compared file by file with the tree as
 * it was when that set was taken; then prune --keep-last 3 leaves exactly the pieces the last three
 * name, and they restore again. Seeded, so a failure can be replayed.
 */
import { test } from 'node:test';
import { rng } from '../bench/data.js';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { filesComponent } from '../agent/components/files.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
import { PIECE_SIZE, storeFilesOf, storeOfTarget, storedFiles } from '../common/store.js';
import { verifyAllSets } from '../coordinator/sets.js';
import { prune } from '../coordinator/prune.js';
import { AgentPool } from '../coordinator/agents.js';
import { clientCredentials } from '../common/tls.js';


async function state(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    const mode = (Number(st.mode) & 0o7777).toString(8);
    if (st.isDirectory()) {
      if (rel !== '.') out.set(rel, `dir ${mode} ${st.mtimeNs}`);
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out.set(rel, `file ${mode} ${st.mtimeNs} ${st.size} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`);
  };
  await walk(root);
  return out;
}

async function files(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string) => {
    for (const d of await fsp.readdir(p, { withFileTypes: true })) {
      const c = path.join(p, d.name);
      if (d.isDirectory()) await walk(c);
      else out.push(c);
    }
  };
  await walk(root);
  return out.sort();
}

test('thirty incremental sets with random changes: each one restores exactly as its tree was; prune --keep-last 3 frees exactly what the others named', async () => {
  const seed = Number(process.env.LSBACKUP_TEST_SEED ?? 1402);
  const rand = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const root = path.join(tempDir('incr-src'), 'tree');
  for (let d = 0; d < 6; d++) {
    await fsp.mkdir(path.join(root, `d${d}`), { recursive: true });
    for (let i = 0; i < 25; i++) await fsp.writeFile(path.join(root, `d${d}`, `f${i}.conf`), `d${d} f${i} ${'v'.repeat(Math.floor(rand() * 3000))}\n`);
  }
  const big = path.join(root, 'd0', 'big.log');
  await fsp.writeFile(big, Buffer.alloc(PIECE_SIZE + 1000, 'log line\n'));
  const rt = runtimeOf([filesComponent('haproxy', [root])]);
  const target = tempDir('incr-target');
  const sets: { id: string; expect: Map<string, string>; pieces: Set<string> }[] = [];
  let n = 0;

  const change = async () => {
    const all = await files(root);
    const f = pick(all);
    const kind = pick(['edit-same-size', 'edit', 'delete', 'rename', 'new', 'file-to-dir', 'touch', 'chmod', 'grow']);
    switch (kind) {
      case 'edit-same-size': {
        const b = await fsp.readFile(f);
        if (b.length) b[Math.floor(rand() * b.length)] ^= 0x20;
        // Same size and, within the second, maybe the same mtime seconds: the ns mtime still differs.
        await fsp.writeFile(f, b);
        break;
      }
      case 'edit':
        await fsp.appendFile(f, `edit ${n++}\n`);
        break;
      case 'delete':
        if (f !== big) await fsp.rm(f);
        break;
      case 'rename':
        if (f !== big) await fsp.rename(f, path.join(path.dirname(f), `renamed-${n++}-${path.basename(f)}`));
        break;
      case 'new':
        await fsp.writeFile(path.join(root, `d${Math.floor(rand() * 6)}`, `new-${n++}.conf`), `new ${n} ${'n'.repeat(Math.floor(rand() * 5000))}\n`);
        break;
      case 'file-to-dir': {
        // A file becomes a directory of that name; a directory made so earlier becomes a file again.
        const dirs = (await fsp.readdir(path.join(root, 'd1'), { withFileTypes: true })).filter((d) => d.isDirectory());
        if (dirs.length && rand() < 0.5) {
          const d = path.join(root, 'd1', dirs[0]!.name);
          await fsp.rm(d, { recursive: true });
          await fsp.writeFile(d, `a file again ${n++}\n`);
        } else if (f !== big) {
          await fsp.rm(f);
          await fsp.mkdir(f);
          await fsp.writeFile(path.join(f, 'inside'), `inside ${n++}\n`);
        }
        break;
      }
      case 'touch':
        await fsp.utimes(f, new Date(), new Date(Date.now() - Math.floor(rand() * 1e9)));
        break;
      case 'chmod':
        await fsp.chmod(f, pick([0o600, 0o640, 0o644, 0o400]));
        break;
      case 'grow':
        await fsp.appendFile(big, Buffer.alloc(Math.floor(rand() * 100_000), 'more\n'));
        break;
    }
  };

  for (let round = 0; round < 30; round++) {
    if (round > 0) for (let k = 0, m = 1 + Math.floor(rand() * 6); k < m; k++) await change();
    const expect = await state(root);
    const { id, manifest } = await backupLocal(rt, target, [], { format: 3, parentId: sets.at(-1)?.id ?? '' });
    assert.equal(manifest.status, 'complete', `round ${round} (seed ${seed}): ${manifest.reasons.join('; ')}`);
    sets.push({ id, expect, pieces: new Set(manifest.parts.flatMap((p) => p.entries.flatMap((e) => storeFilesOf(e)))) });
  }
  // The tree is mostly unchanged night to night: the store holds far less than thirty copies.
  const stored = [...storedFiles(storeOfTarget(target))].length;
  assert.ok(stored < 2 * 160, `${stored} pieces for thirty sets of about 150 files`);
  const v = await verifyAllSets(target, () => undefined);
  assert.equal(v.status, 'ok', (v.reasons ?? []).join('\n'));

  for (const [i, s] of sets.entries()) {
    await fsp.rm(root, { recursive: true, force: true });
    const r = await restoreLocal(rt, target, s.id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], `set ${i} (seed ${seed}): ${JSON.stringify(r.results)}`);
    const got = await state(root);
    assert.deepEqual([...got.keys()].sort(), [...s.expect.keys()].sort(), `set ${i} (seed ${seed}): the same paths`);
    for (const [k, want] of s.expect) assert.equal(got.get(k), want, `set ${i} (seed ${seed}): ${k}`);
  }

  // prune --keep-last 3: the mark moves what only the 27 removed sets named to the trash, a
  // second prune once the grace has passed frees it; the store then holds exactly what the last
  // three name, and they restore as they were.
  const pool = new AgentPool(clientCredentials(undefined, true), 1000);
  const grace = 60_000;
  const later = Date.now() + 2 * 3_600_000;
  const request = { target, keepLast: 3, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, dryRun: false, incompleteGraceHours: 0, removeIds: [] };
  const first = await prune(request, pool, { storeGraceMs: grace, now: new Date(later) });
  assert.equal(first.removed?.length, 27, JSON.stringify(first));
  await prune(request, pool, { storeGraceMs: grace, now: new Date(later + grace + 1000) });
  const kept = sets.slice(-3);
  const named = new Set(kept.flatMap((k) => [...k.pieces]));
  assert.deepEqual([...storedFiles(storeOfTarget(target))].sort(), [...named].sort(), 'the store holds exactly the pieces the remaining sets name');
  for (const s of kept) {
    await fsp.rm(root, { recursive: true, force: true });
    const r = await restoreLocal(rt, target, s.id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], `kept set ${s.id} (seed ${seed}): ${JSON.stringify(r.results)}`);
    assert.deepEqual(await state(root), s.expect, `kept set ${s.id} (seed ${seed}) after the prune`);
  }
});
