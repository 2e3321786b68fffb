/**
 * The content store's garbage collection (FORMAT.md "Garbage collection (prune and delete)") on
 * real format-3 sets and a real store on disk: what the mark moves to the trash, what the sweep
 * frees or moves back, when it does nothing, and that a SIGKILL at any point loses no piece a set
 * names. Time is a `now` handed in (two hours ahead of the files' real mtimes, so every file is
 * old unless a test makes it young), never a sleep.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentPool } from '../coordinator/agents.js';
import { prune } from '../coordinator/prune.js';
import { collectGarbage, storeLine, type GcOptions, type GcResult } from '../coordinator/store-gc.js';
import { clientCredentials } from '../common/tls.js';
import type { PruneRequest__Output as PruneRequest } from '../proto/generated/lsbackup/v1/PruneRequest.js';
import { sealManifest } from '../common/manifest.js';
import { storeOfTarget, type Store } from '../common/store.js';
import { humanBytes } from '../common/units.js';
import { tempDir } from './helpers/harness.js';
import { idAt, run } from './helpers/ops.js';
import { LISTING, inData, inTrash, putPieces, storeFiles, storedBytes, writeStoreSet } from './helpers/store-sets.js';

const HOUR = 3_600_000;
const GRACE = 60_000;
const ID_A = '20261201T010000Z';
const ID_B = '20261201T020000Z';
const ID_C = '20261201T030000Z';

const contents = (n: number) => Array.from({ length: n }, (_, i) => randomBytes(300 + i));
/** The trash round a collection at `nowMs` makes. */
const roundOf = (nowMs: number) => Math.floor(nowMs / 1000);
const gc = (target: string, nowMs: number, more: Partial<GcOptions> = {}): Promise<GcResult> => collectGarbage(target, { graceMs: GRACE, dryRun: false, now: new Date(nowMs), ...more });
const sameSet = (got: Set<string>, want: Iterable<string>, what: string) => assert.deepEqual([...got].sort(), [...new Set(want)].sort(), what);

/** Set A of three pieces, and set B of A's third and one of its own: what only A names goes with A. */
async function twoSets(target: string): Promise<{ a0: string; a1: string; a2: string; b: string[] }> {
  const a = contents(3);
  const [a0, a1, a2] = await writeStoreSet(target, ID_A, a);
  const b = await writeStoreSet(target, ID_B, [a[2]!, ...contents(1)]);
  return { a0, a1, a2, b };
}

/** Every file of the store with its size and mtime: what "nothing changed" compares. */
async function snapshot(store: Store): Promise<string[]> {
  const out: string[] = [];
  for (const f of await storeFiles(store)) {
    const st = await fsp.lstat(path.join(store.dir, f));
    out.push(`${f} ${st.size} ${st.mtimeMs}`);
  }
  return out;
}

test('a piece no set names goes to the trash at one collection and is freed by a later one after the grace; named pieces stay; a trashed piece a set names again comes back', async () => {
  const target = tempDir('gc-a');
  const store = storeOfTarget(target);
  const t0 = Date.now() + 2 * HOUR;
  const { a0, a1, a2, b } = await twoSets(target);
  const o = contents(2);
  const orphans = await putPieces(store, o);
  const orphanBytes = await storedBytes(store, orphans);

  let r = await gc(target, t0);
  assert.equal(r.skipped, undefined);
  assert.deepEqual(r.trashed, { pieces: 2, bytes: orphanBytes });
  assert.deepEqual([r.freed.pieces, r.rescued.pieces, r.live], [0, 0, 4]);
  sameSet(inData(store), [a0, a1, a2, ...b], 'every named piece stays in data/');
  sameSet(await inTrash(store, roundOf(t0)), orphans, 'the orphans are in the round of this collection');
  assert.deepEqual(await store.read(orphans[0]!), o[0], 'readers find a piece in the trash');
  assert.equal(storeLine(r, false), `store: 2 pieces (${humanBytes(orphanBytes)}) to the trash, 0 pieces (0 B) freed, 0 back`);

  // Set A is pruned, and a set committed meanwhile names orphan 0 while it lies in the trash.
  await fsp.rm(path.join(target, ID_A), { recursive: true });
  await writeStoreSet(target, ID_C, [o[0]!], { namedOnly: true });
  const aBytes = await storedBytes(store, [a0, a1]);
  const t1 = t0 + 30_000;
  r = await gc(target, t1);
  assert.deepEqual(r.trashed, { pieces: 2, bytes: aBytes }, 'what only the pruned set named goes to the trash');
  assert.deepEqual([r.freed.pieces, r.rescued.pieces], [0, 0], 'the first round is within the grace period: not swept yet');
  sameSet(await inTrash(store, roundOf(t1)), [a0, a1], 'a second round');
  assert.ok(inData(store).has(a2), 'a piece set B still names stays');

  r = await gc(target, t0 + GRACE + 1000);
  assert.deepEqual(r.rescued, { pieces: 1, bytes: await storedBytes(store, [orphans[0]!]) }, 'the piece set C names goes back');
  assert.deepEqual(r.freed, { pieces: 1, bytes: orphanBytes - r.rescued.bytes }, 'the other orphan is freed');
  assert.ok(inData(store).has(orphans[0]!));
  assert.deepEqual(store.trashRounds(), [String(roundOf(t1))], 'the swept round is gone; the younger one waits');

  r = await gc(target, t1 + GRACE + 1000);
  assert.deepEqual(r.freed, { pieces: 2, bytes: aBytes });
  assert.deepEqual(store.trashRounds(), []);
  sameSet(inData(store), [...b, orphans[0]!], 'data/ holds exactly what the remaining sets name');
  assert.deepEqual(await store.read(orphans[0]!), o[0]);
});

test('nothing is collected while an incomplete set was written within the grace period; once older, its listing counts as far as it can be read', async () => {
  const target = tempDir('gc-b');
  const store = storeOfTarget(target);
  const t = Date.now() + 2 * HOUR;
  await writeStoreSet(target, ID_A, contents(2));
  const orphans = await putPieces(store, contents(3));
  const running = idAt(new Date(t - 10_000));
  const own = await writeStoreSet(target, running, contents(200), { incomplete: true });
  const before = await snapshot(store);

  let r = await gc(target, t);
  assert.match(r.skipped ?? '', new RegExp(`^set ${running} has no manifest and was written 1[01] s ago, within the grace period of 60 s: a backup may be running$`));
  assert.match(storeLine(r, false), /^store: nothing collected: set \d{8}T\d{6}Z has no manifest/);
  assert.deepEqual(await snapshot(store), before, 'nothing moved, nothing deleted');

  // Started long ago, but still writing: its last write counts, not its id.
  const slow = idAt(new Date(t - 5 * HOUR));
  await writeStoreSet(target, slow, contents(1), { incomplete: true });
  await fsp.rm(path.join(target, running), { recursive: true });
  const file = path.join(target, slow, LISTING);
  await fsp.utimes(file, new Date(t - 5_000), new Date(t - 5_000));
  r = await gc(target, t);
  assert.match(r.skipped ?? '', new RegExp(`^set ${slow} has no manifest and was written 5 s ago`));
  await fsp.rm(path.join(target, slow), { recursive: true });

  // An incomplete set older than the grace period (a crashed backup) with a listing cut short.
  const crashed = idAt(new Date(t - 3 * HOUR));
  const named = await writeStoreSet(target, crashed, contents(200), { incomplete: true });
  const cut = path.join(target, crashed, LISTING);
  const full = await fsp.readFile(cut);
  await fsp.writeFile(cut, full.subarray(0, Math.floor(full.length * 0.6)));
  r = await gc(target, t);
  assert.equal(r.skipped, undefined);
  const data = inData(store);
  assert.ok(named.slice(0, 20).every((id) => data.has(id)), 'the pieces its readable lines name stay');
  assert.ok(!data.has(named.at(-1)!), 'a piece named only after the cut is not known to be named: it goes to the trash');
  assert.ok(orphans.every((id) => !data.has(id)), 'the orphans go');
  assert.ok(own.every((id) => !data.has(id)), 'the pieces of the removed running set go too');
});

test('a set whose listing or manifest cannot be read stops the whole collection, naming the set and the file', async () => {
  const target = tempDir('gc-c');
  const store = storeOfTarget(target);
  const t0 = Date.now() + 2 * HOUR;
  await writeStoreSet(target, ID_A, contents(2));
  await writeStoreSet(target, ID_B, contents(2));
  await putPieces(store, contents(2));
  await gc(target, t0); // the orphans lie in a round that the next collection would sweep
  await putPieces(store, contents(2)); // and more orphans the next mark would move
  const listing = path.join(target, ID_B, LISTING);
  const manifestFile = path.join(target, ID_B, 'manifest.json');
  const goodListing = await fsp.readFile(listing);
  const goodManifest = await fsp.readFile(manifestFile, 'utf8');
  const restore = async () => {
    await fsp.writeFile(listing, goodListing);
    await fsp.writeFile(manifestFile, goodManifest);
  };
  const flipped = Buffer.from(goodListing);
  flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
  const recounted = JSON.parse(goodManifest) as { parts: { entryCount: number }[] };
  recounted.parts[0]!.entryCount += 1;
  const cases: [string, () => Promise<void>, RegExp][] = [
    ['a flipped byte in the listing', () => fsp.writeFile(listing, flipped), new RegExp(`^set ${ID_B}: ${LISTING} is not the listing the manifest names \\(\\d+ bytes, sha256 [0-9a-f]{12}…\\); it might name any piece$`)],
    ['the listing missing', () => fsp.rm(listing), new RegExp(`^set ${ID_B}: ${LISTING} is missing; it might name any piece$`)],
    ['the manifest changed', () => fsp.writeFile(manifestFile, goodManifest.replace('"test"', '"tset"')), new RegExp(`^set ${ID_B} cannot be read \\(manifest .*: digest mismatch .*\\); it might name any piece$`)],
    ['a manifest that counts more lines than its listing has', () => fsp.writeFile(manifestFile, JSON.stringify(sealManifest(recounted))), new RegExp(`^set ${ID_B}: the tree artifacts of node1/haproxy hold 2 entries, its part record says 3; it might name any piece$`)],
  ];
  for (const [what, damage, line] of cases) {
    await damage();
    const before = await snapshot(store);
    const r = await gc(target, t0 + GRACE + 1000);
    assert.match(r.skipped ?? '(collected)', line, what);
    assert.deepEqual([r.trashed.pieces, r.freed.pieces, r.rescued.pieces], [0, 0, 0], what);
    assert.deepEqual(await snapshot(store), before, `${what}: nothing moved, nothing deleted`);
    await restore();
  }
  const r = await gc(target, t0 + GRACE + 1000);
  assert.deepEqual([r.skipped, r.trashed.pieces, r.freed.pieces], [undefined, 2, 2], 'repaired, the collection goes on');
});

test('--dry-run changes nothing and reports what the real run then does, bytes included', async () => {
  const target = tempDir('gc-d');
  const store = storeOfTarget(target);
  const t0 = Date.now() + 2 * HOUR;
  const { a0, a1, b } = await twoSets(target);
  const o = contents(2);
  const orphans = await putPieces(store, o);
  await gc(target, t0);
  await writeStoreSet(target, ID_C, [o[0]!], { namedOnly: true });
  await fsp.rm(path.join(target, ID_A), { recursive: true });
  const now = t0 + GRACE + 1000;
  const [young] = await putPieces(store, contents(1));
  await fsp.utimes(store.pieceFile(young!), new Date(now - 5_000), new Date(now - 5_000));
  const tmp = path.join(store.dataDir, '00', `.${'0'.repeat(64)}.4242.0123456789ab.tmp`);
  await fsp.writeFile(tmp, randomBytes(1000));
  const want = {
    trashed: { pieces: 2, bytes: await storedBytes(store, [a0, a1]) },
    freed: { pieces: 1, bytes: await storedBytes(store, [orphans[1]!]) },
    rescued: { pieces: 1, bytes: await storedBytes(store, [orphans[0]!]) },
    young: { pieces: 1, bytes: await storedBytes(store, [young!]) },
    tmp: { pieces: 1, bytes: 1000 },
  };
  const pick = (r: GcResult) => ({ trashed: r.trashed, freed: r.freed, rescued: r.rescued, young: r.young, tmp: r.tmp });

  const before = await snapshot(store);
  const dry = await gc(target, now, { dryRun: true });
  assert.deepEqual(pick(dry), want);
  assert.deepEqual(await snapshot(store), before, 'a dry run moves and deletes nothing');
  assert.equal(
    storeLine(dry, true),
    `store: would move 2 pieces (${humanBytes(want.trashed.bytes)}) to the trash, would free 1 piece (${humanBytes(want.freed.bytes)}), 1 would go back, 1 temp file of interrupted backups (1000 B) to delete`,
  );
  // A prune's dry run has not removed the sets it would: the mark leaves out what they name.
  const without = await gc(target, now, { dryRun: true, gone: new Set([ID_B]) });
  assert.deepEqual(without.trashed, { pieces: 4, bytes: want.trashed.bytes + (await storedBytes(store, b)) });
  assert.deepEqual(await snapshot(store), before);

  const wet = await gc(target, now);
  assert.deepEqual(pick(wet), want, 'the real run does what the dry run said');
  await assert.rejects(fsp.stat(tmp), { code: 'ENOENT' });
  assert.ok(inData(store).has(young!), 'a young orphan stays');
});

test('a target without a store (sets of formats 1 and 2) has nothing to collect', async () => {
  const target = tempDir('gc-none');
  await fsp.mkdir(path.join(target, ID_A));
  const r = await gc(target, Date.now());
  assert.equal(r.noStore, true);
});

/** mulberry32: the kill points of a seed are the same in every run. */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const CHILD = fileURLToPath(new URL('./helpers/gc-child.js', import.meta.url));

/** Runs one collection in its own process, killed `killAfterMs` after it started (never, when undefined). */
function childCollection(target: string, nowMs: number, killAfterMs?: number): Promise<{ finished: boolean; ms: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, target, String(nowMs), String(GRACE)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    let started = 0;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!started && out.includes('go\n')) {
        started = performance.now();
        if (killAfterMs !== undefined) setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      }
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (killAfterMs === undefined && code !== 0) reject(new Error(`the collection exited with ${code ?? signal}`));
      else resolve({ finished: out.includes('done\n'), ms: performance.now() - started });
    });
  });
}

test('SIGKILL of a collection at random points loses no piece a set names, and the next run completes the job', async (t) => {
  const fixture = tempDir('gc-kill');
  const store = storeOfTarget(fixture);
  const t0 = Date.now() + 2 * HOUR;
  const named = contents(500);
  const l = await writeStoreSet(fixture, ID_A, named);
  const o = contents(1000);
  const orphans = await putPieces(store, o);
  await gc(fixture, t0);
  // A set named 250 of the orphans while they lay in the trash: the sweep moves them back.
  await writeStoreSet(fixture, ID_B, o.slice(0, 250), { namedOnly: true });
  const fresh = await putPieces(store, contents(500));
  const live = new Map([...l.map((id, i) => [id, named[i]!] as const), ...orphans.slice(0, 250).map((id, i) => [id, o[i]!] as const)]);
  const t1 = t0 + GRACE + 1000;

  const copy = async (name: string) => {
    const dir = path.join(tempDir(name), 't');
    const r = await run('cp', ['-a', fixture, dir]); // mtimes kept: they are what the collection reads
    assert.equal(r.code, 0, r.stderr);
    return dir;
  };
  // Kill points are spread over the shorter of two whole runs: the machine's load varies.
  const timed = async (name: string) => {
    const target = await copy(name);
    const { ms } = await childCollection(target, t1);
    await fsp.rm(path.dirname(target), { recursive: true });
    return ms;
  };
  const ms = Math.min(await timed('gc-kill-timed-1'), await timed('gc-kill-timed-2'));
  let cutShort = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const target = await copy(`gc-kill-${seed}`);
    const s = storeOfTarget(target);
    // Each seed kills in its own sixth of the run: early ones in the mark, late ones in the sweep.
    const killAfter = Math.floor(((seed - 1 + random(seed)()) / 6) * ms * 0.9);
    const { finished } = await childCollection(target, t1, killAfter);
    t.diagnostic(`seed ${seed}: killed after ${killAfter} of ${Math.round(ms)} ms, ${finished ? 'after it finished' : 'in the middle'}`);
    if (!finished) cutShort++;
    for (const id of live.keys()) assert.ok(s.locate(id), `seed ${seed} (killed after ${killAfter} of ${Math.round(ms)} ms): piece ${id} is in data/ or the trash`);
    // Every move is one rename: a piece found is whole. Reading a sample of them says so.
    for (const id of [...live.keys()].filter((_, i) => i % 10 === seed)) assert.deepEqual(await s.read(id), live.get(id), `seed ${seed}: piece ${id} reads back`);

    const r = await gc(target, t1);
    assert.equal(r.skipped, undefined);
    sameSet(inData(s), live.keys(), `seed ${seed}: after a second run, data/ holds the named pieces`);
    assert.deepEqual(s.trashRounds(), [String(roundOf(t1))], `seed ${seed}: the old round is swept`);
    sameSet(await inTrash(s, roundOf(t1)), fresh, `seed ${seed}: this round holds what the mark moved`);
    await gc(target, t1 + GRACE + 1000);
    assert.deepEqual(s.trashRounds(), [], `seed ${seed}: a later run empties the trash`);
    sameSet(inData(s), live.keys(), `seed ${seed}`);
    await fsp.rm(path.dirname(target), { recursive: true });
  }
  assert.ok(cutShort >= 3, `the kills land in the middle of the collection (${cutShort} of 6 did; it takes ${Math.round(ms)} ms)`);
});

/** What the CLI sends for `prune` and `delete` (cli/commands/prune.ts), here straight to the coordinator's prune. */
const request = (target: string, more: Partial<PruneRequest>): PruneRequest => ({ target, keepLast: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, dryRun: false, incompleteGraceHours: 0, removeIds: [], ...more });
// No set here keeps data outside its directory: prune never calls an agent, so none is listening.
const pool = new AgentPool(clientCredentials(undefined, true), 1000);

test('prune and delete collect the store after removing sets, under the lock; their dry runs count what the sets they would remove name', async () => {
  const target = tempDir('gc-prune');
  const store = storeOfTarget(target);
  const t0 = Date.now() + 2 * HOUR;
  const { a0, a1, b } = await twoSets(target);
  const aBytes = await storedBytes(store, [a0, a1]);
  const opts = (nowMs: number) => ({ storeGraceMs: GRACE, now: new Date(nowMs) });

  const before = await snapshot(store);
  let r = await prune(request(target, { keepLast: 1, dryRun: true }), pool, opts(t0));
  assert.deepEqual(r.removed, [ID_A]);
  assert.equal(r.reasons?.at(-1), `store: would move 2 pieces (${humanBytes(aBytes)}) to the trash, would free 0 pieces (0 B), 0 would go back`);
  assert.deepEqual(await snapshot(store), before);

  r = await prune(request(target, { keepLast: 1 }), pool, opts(t0));
  assert.deepEqual(r.removed, [ID_A]);
  assert.equal(r.reasons?.at(-1), `store: 2 pieces (${humanBytes(aBytes)}) to the trash, 0 pieces (0 B) freed, 0 back`);
  sameSet(inData(store), b, 'data/ holds what the remaining set names');

  // delete is a prune of named sets; its line frees the round of the first prune once it is old.
  const bBytes = await storedBytes(store, b);
  r = await prune(request(target, { removeIds: [ID_B], dryRun: true }), pool, opts(t0 + GRACE + 1000));
  assert.equal(r.reasons?.at(-1), `store: would move 2 pieces (${humanBytes(bBytes)}) to the trash, would free 2 pieces (${humanBytes(aBytes)}), 0 would go back`);
  r = await prune(request(target, { removeIds: [ID_B] }), pool, opts(t0 + GRACE + 1000));
  assert.deepEqual(r.removed, [ID_B]);
  assert.equal(r.reasons?.at(-1), `store: 2 pieces (${humanBytes(bBytes)}) to the trash, 2 pieces (${humanBytes(aBytes)}) freed, 0 back`);
  assert.equal(inData(store).size, 0);
  await assert.rejects(fsp.stat(path.join(target, '.lsbackup.lock')), { code: 'ENOENT' }, 'the lock is given back');
});
