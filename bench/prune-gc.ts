/**
 * Bench item 15 (issue 14's prune row): thirty nightly sets of one node's data with 3% of it
 * changed between nights (large files rewritten, small files edited, deleted and added), then
 * `prune --keep-last 7` twice through the CLI: the first run marks what no kept set names, the
 * second, after the coordinator's grace period (1 s here), sweeps it. What is left in the store
 * is compared with the names the kept sets' listings give, read here with zlib and JSON.parse
 * rather than with lsbackup's reader; what went is compared with the bytes of every store file
 * no kept set names, counted before the prune.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { randomFillSync } from 'node:crypto';
import { setDir } from '../common/manifest.js';
import { storedFiles, storeOfTarget } from '../common/store.js';
import { DemoCluster } from '../demo/cluster.js';
import { GiB, MiB, makeRandomSet, rng } from './data.js';
import { fmtBytes, fmtMs, median, q, settle, sh, timeIt } from './measure.js';
import { makeSmallFiles, type BenchKit } from './scale-files.js';
import { cliOk, lastLine, treeCluster } from './tree-cluster.js';

const NIGHTS = 30;
const KEEP = 7;
const DAILY_CHANGE = 0.03;
const PER = 100 * GiB;

async function filesUnder(root: string): Promise<{ file: string; size: number }[]> {
  const out: { file: string; size: number }[] = [];
  for (const ent of await fsp.readdir(root, { withFileTypes: true, recursive: true })) {
    if (!ent.isFile()) continue;
    const file = path.join(ent.parentPath ?? ent.path, ent.name);
    out.push({ file, size: (await fsp.stat(file)).size });
  }
  return out.sort((a, b) => (a.file < b.file ? -1 : 1));
}

/** One night's change: 3% of the large files' bytes rewritten; 3% of the small files edited, 0.3% deleted, as many new. */
async function change(large: { file: string; size: number }[], small: string[], r: () => number, night: number): Promise<number> {
  const total = large.reduce((n, f) => n + f.size, 0);
  let rewritten = 0;
  while (rewritten < DAILY_CHANGE * total) {
    const f = large[Math.floor(r() * large.length)]!;
    const buf = Buffer.allocUnsafe(f.size);
    randomFillSync(buf);
    await fsp.writeFile(f.file, buf);
    rewritten += f.size;
  }
  for (let i = 0; i < Math.ceil(DAILY_CHANGE * small.length); i++) await fsp.appendFile(small[Math.floor(r() * small.length)]!, `night ${night} edit ${i} ${r()}\n`);
  for (let i = 0; i < Math.ceil(0.003 * small.length); i++) {
    const k = Math.floor(r() * small.length);
    await fsp.rm(small[k]!, { force: true });
    const born = path.join(path.dirname(small[k]!), `new-${night}-${i}.conf`);
    await fsp.writeFile(born, `born on night ${night}: ${r()}\n`.repeat(1 + Math.floor(r() * 40)));
    small[k] = born;
  }
  return rewritten;
}

/** Store file names (a piece id, or `<pack>.pack`) that the listings of these sets name, read without lsbackup's reader. */
async function namedBy(target: string, ids: string[]): Promise<Set<string>> {
  const names = new Set<string>();
  for (const id of ids) {
    const dir = setDir(target, id);
    for (const ent of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
      if (!ent.isFile() || !ent.name.endsWith('.tree.jsonl.gz')) continue;
      const lines = createInterface({ input: createReadStream(path.join(ent.parentPath ?? ent.path, ent.name)).pipe(createGunzip()), crlfDelay: Infinity });
      for await (const line of lines) {
        if (!line) continue;
        const e = JSON.parse(line) as { type?: string; pieces?: string[]; pack?: string };
        if (e.type !== 'file') continue;
        if (e.pack !== undefined) names.add(`${e.pack}.pack`);
        else for (const p of e.pieces ?? []) names.add(p);
      }
    }
  }
  return names;
}

/** Each store file's size, by name. */
async function sizes(store: ReturnType<typeof storeOfTarget>, names: Iterable<string>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const name of names) out.set(name, (await fsp.lstat(store.pieceFile(name))).size);
  return out;
}
const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

interface PruneRuns {
  /** Bytes in the store before each prune. */
  stores: number[];
  marks: number[];
  sweeps: number[];
  /** `rm -rf` of files of the sizes each sweep freed: what the file system alone takes to free them. */
  rms: number[];
  freed: number[];
}

/** `runs` series of thirty nights and two prunes, on data of `bytes` (large files) and `smallCount` small files. */
async function pruneSeries(kit: BenchKit, runs: number, label: string, bytes: number, smallCount: number): Promise<PruneRuns> {
  const root = path.join(kit.tmp, `node15-${label}`);
  const r = rng(15);
  const large = await makeRandomSet(path.join(root, 'tsdb'), bytes, { min: MiB, max: 16 * MiB, seed: 15 });
  const small = await makeSmallFiles(path.join(root, 'etc'), smallCount, 15);
  kit.log(`15. ${label}: ${fmtBytes(large.bytes + small.bytes)}: ${large.files} large files, ${small.files} small ones; ${NIGHTS} nights of ${DAILY_CHANGE * 100}% change`);
  const tc = await treeCluster(kit, root, { store_grace_s: 1 });
  const target = path.join(kit.tmp, `sets15-${label}`);
  const marks: number[] = [];
  const sweeps: number[] = [];
  const stores: number[] = [];
  const rms: number[] = [];
  const freedBytes: number[] = [];
  try {
    for (let run = 0; run < runs; run++) {
      await kit.rmrf(target);
      await fsp.mkdir(target);
      const bigFiles = await filesUnder(large.root);
      const smallFiles = (await filesUnder(small.root)).map((f) => f.file);
      for (let night = 0; night < NIGHTS; night++) {
        if (night > 0) await change(bigFiles, smallFiles, r, night);
        const out = (await cliOk(tc.c, ['backup', '-b', tc.c.buildDir, '-t', target], 'lsbackup backup')).stdout;
        if (!/ complete$/m.test(out)) throw new Error(`backup ${night + 1} not complete: ${lastLine(out)}`);
      }
      const store = storeOfTarget(target);
      const before = await sizes(store, storedFiles(store));
      const storeBytes = sum(before.values());
      stores.push(storeBytes);
      const pruneArgs = ['--json', 'prune', '-t', target, '--keep-last', String(KEEP)];
      let kept: string[] = [];
      await settle();
      marks.push(await timeIt(async () => (kept = DemoCluster.result<{ kept: string[] }>((await cliOk(tc.c, pruneArgs, 'lsbackup prune')).stdout).kept)));
      if (kept.length !== KEEP) throw new Error(`prune kept ${kept.length} sets, not ${KEEP}`);
      const named = await namedBy(target, kept);
      const unnamed = [...before.keys()].filter((n) => !named.has(n));
      const unnamedBytes = sum(unnamed.map((n) => before.get(n)!));
      await new Promise((res) => setTimeout(res, 1_100)); // past the grace period: the next run sweeps
      await settle();
      sweeps.push(await timeIt(() => cliOk(tc.c, pruneArgs, 'lsbackup prune')));
      const after = new Set(storedFiles(store));
      const extra = [...after].filter((n) => !named.has(n));
      const lost = [...named].filter((n) => !after.has(n));
      if (extra.length || lost.length) throw new Error(`after prune the store holds ${extra.length} files no kept set names and lacks ${lost.length} that one names`);
      const trashLeft = store.trashRounds().length;
      if (trashLeft) throw new Error(`after the sweep ${trashLeft} trash rounds are left`);
      const freed = storeBytes - sum((await sizes(store, after)).values());
      if (freed !== unnamedBytes) throw new Error(`prune freed ${freed} bytes; the files no kept set names hold ${unnamedBytes}`);
      // The kernel's own price of freeing those bytes: rm of files of the same sizes, written anew.
      const floor = path.join(kit.tmp, 'rm15');
      await fsp.mkdir(floor, { recursive: true });
      for (const [i, name] of unnamed.entries()) {
        const buf = Buffer.allocUnsafe(before.get(name)!);
        randomFillSync(buf);
        await fsp.writeFile(path.join(floor, `f${i}`), buf);
      }
      await settle();
      rms.push(await timeIt(() => sh(`rm -rf ${q(floor)}`)));
      freedBytes.push(freed);
      kit.log(`15. ${label} run ${run + 1}: store ${fmtBytes(storeBytes)} in ${before.size} files, mark ${fmtMs(marks.at(-1)!)}, sweep ${fmtMs(sweeps.at(-1)!)}, freed ${fmtBytes(freed)} (${unnamed.length} files), exactly what no kept set names`);
      kit.note(`15. ${label} run ${run + 1}: store of ${fmtBytes(storeBytes)} in ${before.size.toLocaleString('en-US')} files after ${NIGHTS} sets; freed ${fmtBytes(freed)} in ${unnamed.length.toLocaleString('en-US')} files, equal to the files no kept set's listing names; the store then holds exactly what the ${KEEP} kept sets name`);
    }
  } finally {
    await tc.c.stop();
    await tc.c.remove();
    await kit.rmrf(target);
    await kit.rmrf(root);
  }
  return { stores, marks, sweeps, rms, freed: freedBytes };
}

export async function pruneCost(kit: BenchKit, runs: number): Promise<void> {
  // Two sizes, ten times apart: their difference is what the prune costs per byte of store, the
  // smaller one's time is what it costs anyway (the CLI, the coordinator, reading 30 sets' records).
  const big = await pruneSeries(kit, runs, 'large', Math.max(8 * MiB, Math.round(GiB * kit.scale)), Math.max(200, Math.round(5_000 * kit.scale)));
  const little = await pruneSeries(kit, runs, 'small', Math.max(4 * MiB, Math.round((GiB * kit.scale) / 10)), Math.max(100, Math.round(500 * kit.scale)));
  for (const [label, pick] of [
    ['mark (the first run: what no kept set names goes to the trash)', (p: PruneRuns) => p.marks],
    ['sweep (the next run, past the grace period: the trash is deleted)', (p: PruneRuns) => p.sweeps],
  ] as const) {
    const [tb, tl] = [median(pick(big)), median(pick(little))];
    const [sb, sl] = [median(big.stores), median(little.stores)];
    const slope = Math.max(0, (tb - tl) / (sb - sl));
    const per = tl + slope * PER;
    kit.addRow({
      what: `15. prune --keep-last ${KEEP} after ${NIGHTS} nightly sets with ${DAILY_CHANGE * 100}% daily change, ${label}: its time on a 100 GiB store, from stores of ${fmtBytes(sl)} and ${fmtBytes(sb)} (the smaller one's time plus the difference per byte times 100 GiB)`,
      ours: `${fmtMs(per)} (${fmtMs(tl)} and ${fmtMs(tb)})`,
      base: '10 s',
      ratio: per / 10_000,
      target: '≤ 1.00',
      holds: per <= 10_000,
    });
  }
  for (const [label, p] of [['large', big], ['small', little]] as const) {
    kit.note(`15. ${label} store: the sweeps freed ${p.freed.map(fmtBytes).join(', ')}; \`rm -rf\` of files of the same sizes took ${p.rms.map(fmtMs).join(', ')} (${fmtMs(median(p.rms) / (median(p.freed) / GiB))} per GiB freed), the sweeps ${p.sweeps.map(fmtMs).join(', ')}`);
  }
  kit.note(`15. mark runs ${big.marks.map(fmtMs).join(', ')} (large), ${little.marks.map(fmtMs).join(', ')} (small); sweep runs ${big.sweeps.map(fmtMs).join(', ')} (large), ${little.sweeps.map(fmtMs).join(', ')} (small); each through the CLI (\`--json prune\`), the coordinator's \`store_grace_s\` set to 1`);
}
