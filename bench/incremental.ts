/**
 * Bench item 13 (issue 14, incremental sets): one node's data (8 TSDB-like blocks of incompressible
 * chunks, log text, 10,000 small config files; sizes follow LSBACKUP_BENCH_SCALE) backed up three
 * times into a fresh target (the 1st; the 2nd with nothing changed; the 3rd after one new block),
 * then the latest set restored into a wiped directory. lsbackup runs through the CLI, coordinator
 * and one agent; restic 0.14 (Debian's package) into a fresh repository per series; tar -xzf for
 * the restore. Each run is one whole series per contender, the contenders rotated run by run.
 */
import { randomFillSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { KiB, MiB, linkTree, makeTextSet, rng } from './data.js';
import { cpuOf, fmtBytes, fmtMs, median, q, settle, sh, timeIt } from './measure.js';
import { makeSmallFiles, type BenchKit, type Timed } from './scale-files.js';
import { cliOk, lastLine, treeCluster, type TreeCluster } from './tree-cluster.js';

const BLOCKS = 8;
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
/** restic always encrypts; the password only has to be the same for init, backup and restore. */
const RESTIC_ENV = 'RESTIC_PASSWORD=lsbackup-bench';

interface NodeData {
  root: string;
  /** The 9th block, outside the tree: hard-linked into it before each series' 3rd backup. */
  newBlock: string;
  bytes: number;
  files: number;
  blockBytes: number;
  configFiles: number;
}

/** One series' measurements: time, CPU and bytes added to the target, per step. */
interface Series {
  first: Timed & { added: number };
  second: Timed & { added: number };
  third: Timed & { added: number };
  restore: Timed;
}

/** A ULID-looking block directory name (`01HX` + 22 characters), as Prometheus names its blocks. */
function blockName(r: () => number): string {
  return '01HX' + Array.from({ length: 22 }, () => CROCKFORD[Math.floor(r() * 32)]).join('');
}

async function writeRandom(file: string, bytes: number): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(bytes, 4 * MiB));
  const fh = await fsp.open(file, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; left -= buf.length) {
      randomFillSync(buf);
      await fh.write(buf, 0, Math.min(left, buf.length));
    }
  } finally {
    await fh.close();
  }
}

/** A TSDB-like block: `chunks/000001` and `index` of random bytes (chunks do not compress), `meta.json`. */
async function makeBlock(dir: string, chunkBytes: number, indexBytes: number, n: number): Promise<number> {
  await fsp.mkdir(path.join(dir, 'chunks'), { recursive: true });
  await writeRandom(path.join(dir, 'chunks', '000001'), chunkBytes);
  await writeRandom(path.join(dir, 'index'), indexBytes);
  const minTime = Date.UTC(2026, 10, 1) + n * 7_200_000;
  const meta = JSON.stringify({ ulid: path.basename(dir), minTime, maxTime: minTime + 7_200_000, stats: { numSamples: 1_000_000 * (n + 1) }, compaction: { level: 1 }, version: 1 }, null, '\t');
  await fsp.writeFile(path.join(dir, 'meta.json'), meta);
  return chunkBytes + indexBytes + Buffer.byteLength(meta);
}

async function makeNodeData(kit: BenchKit): Promise<NodeData> {
  const sized = (bytes: number) => Math.max(64 * KiB, Math.round(bytes * kit.scale));
  const base = path.join(kit.tmp, 'node13');
  const root = path.join(base, 'data');
  const r = rng(14);
  kit.log(`13. generating one node's data: ${BLOCKS} blocks of ${fmtBytes(sized(128 * MiB))}, ${fmtBytes(sized(150 * MiB))} of logs, config files`);
  let bytes = 0;
  let blockBytes = 0;
  for (let i = 0; i < BLOCKS; i++) bytes += await makeBlock(path.join(root, 'prometheus', blockName(r)), sized(128 * MiB), sized(4 * MiB), i);
  const newBlock = path.join(base, 'new-block', blockName(r));
  blockBytes = await makeBlock(newBlock, sized(128 * MiB), sized(4 * MiB), BLOCKS);
  const logs = await makeTextSet(path.join(root, 'log'), sized(150 * MiB), { min: sized(MiB), max: sized(12 * MiB), seed: 14 });
  const config = await makeSmallFiles(path.join(root, 'etc'), Math.max(100, Math.round(10_000 * kit.scale)), 14);
  bytes += logs.bytes + config.bytes;
  const files = BLOCKS * 3 + logs.files + config.files;
  kit.log(`13. ${fmtBytes(bytes)} in ${files} files (${logs.files} logs, ${config.files} config files); the new block is ${fmtBytes(blockBytes)}`);
  return { root, newBlock, bytes, files, blockBytes, configFiles: config.files };
}

async function du(p: string): Promise<number> {
  return Number((await sh(`du -sb ${q(p)}`)).split('\t')[0]);
}

/** Puts the new block into the tree (hard links: no data written, the tree just gains the block). */
async function addBlock(d: NodeData): Promise<string> {
  const dst = path.join(d.root, 'prometheus', path.basename(d.newBlock));
  await linkTree(d.newBlock, dst);
  return dst;
}

/** A timed step after `sync`, with the bytes it added to `store`. */
async function step(store: string, run: () => Promise<Timed>): Promise<Timed & { added: number }> {
  const before = await du(store);
  await settle();
  const t = await run();
  return { ...t, added: (await du(store)) - before };
}

/** lsbackup through the CLI: the coordinator and agent do the work, their CPU is what is counted. */
function lsbackupSeries(kit: BenchKit, tc: TreeCluster, d: NodeData, reference: string): () => Promise<Series> {
  const target = path.join(kit.tmp, 'sets13');
  const pids = [tc.agentPid, tc.coordinatorPid];
  let id = '';
  const timed = async (args: string[], what: string): Promise<Timed> => {
    const c0 = await cpuOf(pids);
    let out = '';
    const ms = await timeIt(async () => (out = (await cliOk(tc.c, args, what)).stdout));
    if (what === 'lsbackup backup') {
      if (!/ complete$/m.test(out)) throw new Error(`backup not complete: ${out.slice(-1500)}`);
      id = lastLine(out);
    }
    return { ms, cpu: (await cpuOf(pids)) - c0 };
  };
  const backup = () => timed(['backup', '-b', tc.c.buildDir, '-t', target], 'lsbackup backup');
  return async () => {
    await kit.rmrf(target);
    await fsp.mkdir(target, { recursive: true });
    const first = await step(target, backup);
    const second = await step(target, backup);
    await addBlock(d);
    const third = await step(target, backup);
    await kit.rmrf(d.root);
    await settle();
    const restore = await timed(['restore', id, '-t', target, '--node', tc.c.nodes[0]!.name], 'lsbackup restore');
    // The restored tree is the next series' data: it must be what was backed up.
    await sh(`diff -r --no-dereference ${q(reference)} ${q(d.root)}`);
    await kit.rmrf(path.join(d.root, 'prometheus', path.basename(d.newBlock)));
    await kit.rmrf(target);
    return { first, second, third, restore };
  };
}

/** restic 0.14 into a fresh repository (`restic init` untimed), restoring into an empty directory. */
function resticSeries(kit: BenchKit, d: NodeData): () => Promise<Series> {
  const repo = path.join(kit.tmp, 'restic13');
  const into = path.join(kit.tmp, 'restic13-restored');
  // Its cache goes below the bench's temp directory, not into root's home.
  const restic = `${RESTIC_ENV} RESTIC_CACHE_DIR=${q(path.join(kit.tmp, 'restic-cache'))} restic -q -r ${q(repo)}`;
  const backup = () => kit.shell(`${restic} backup ${q(d.root)} > /dev/null`, kit.tmp);
  return async () => {
    await kit.rmrf(repo);
    await sh(`${restic} init > /dev/null`);
    const first = await step(repo, backup);
    const second = await step(repo, backup);
    const block = await addBlock(d);
    const third = await step(repo, backup);
    await kit.rmrf(block);
    await kit.rmrf(into);
    await settle();
    const restore = await kit.shell(`${restic} restore latest --target ${q(into)} > /dev/null`, kit.tmp);
    await kit.rmrf(into);
    await kit.rmrf(repo);
    return { first, second, third, restore };
  };
}

function cell(xs: Timed[], added?: number[]): string {
  return `${fmtMs(median(xs.map((x) => x.ms)))}${added ? `, +${fmtBytes(median(added))}` : ''}, CPU ${fmtMs(median(xs.map((x) => x.cpu)))}`;
}

export async function incremental(kit: BenchKit, runs: number): Promise<void> {
  const d = await makeNodeData(kit);
  // The tree as the 3rd backup sees it, packed once: tar -xzf's input, and the reference every
  // lsbackup restore is compared with.
  const tgz = path.join(kit.tmp, 'node13.tar.gz');
  const reference = path.join(kit.tmp, 'node13-reference');
  const block = await addBlock(d);
  await sh(`tar -czf ${q(tgz)} -C ${q(path.dirname(d.root))} ${q(path.basename(d.root))}`);
  await kit.rmrf(block);
  await fsp.mkdir(reference);
  await sh(`tar -xzf ${q(tgz)} -C ${q(reference)}`);
  const untarInto = path.join(kit.tmp, 'node13-untar');
  const untar = async (): Promise<Series['restore']> => {
    await kit.rmrf(untarInto);
    await fsp.mkdir(untarInto);
    await settle();
    const t = await kit.shell(`tar -xzf ${q(tgz)} -C ${q(untarInto)}`, kit.tmp);
    await kit.rmrf(untarInto);
    return t;
  };

  const tc = await treeCluster(kit, d.root);
  try {
    const contenders = [lsbackupSeries(kit, tc, d, path.join(reference, path.basename(d.root))), resticSeries(kit, d), untar] as const;
    const ours: Series[] = [];
    const theirs: Series[] = [];
    const tars: Timed[] = [];
    for (let i = 0; i < runs; i++) {
      // Rotate who goes first, so no contender always runs on a cache another one warmed.
      for (let j = 0; j < contenders.length; j++) {
        const k = (i + j) % contenders.length;
        kit.log(`13. run ${i + 1}/${runs}: ${['lsbackup', 'restic', 'tar -xzf'][k]}`);
        if (k === 0) ours.push(await contenders[0]());
        else if (k === 1) theirs.push(await contenders[1]());
        else tars.push(await contenders[2]());
      }
    }
    report(kit, d, ours, theirs, tars);
  } finally {
    await tc.c.stop();
    await tc.c.remove();
    for (const p of [tgz, reference, untarInto, path.dirname(d.root)]) await kit.rmrf(p);
  }
}

function report(kit: BenchKit, d: NodeData, ours: Series[], theirs: Series[], tars: Timed[]): void {
  const what = `${fmtBytes(d.bytes)}, ${d.files.toLocaleString('en-US')} files: ${BLOCKS} TSDB-like blocks, logs, ${d.configFiles.toLocaleString('en-US')} config files`;
  // restic 0.14 cannot back up unencrypted; lsbackup's encryption cost is item 14's row.
  const enc = 'restic encrypts (0.14 cannot run without), lsbackup unencrypted here: item 14 measures its encryption';
  const timeRow = (label: string, pick: (s: Series) => Timed & { added?: number }, limit: number, target: string) => {
    const o = ours.map(pick);
    const t = theirs.map(pick);
    const added = (xs: (Timed & { added?: number })[]) => (xs[0]?.added === undefined ? undefined : xs.map((x) => x.added!));
    const ratio = median(o.map((x) => x.ms)) / median(t.map((x) => x.ms));
    kit.addRow({ what: label, ours: cell(o, added(o)), base: cell(t, added(t)), ratio, target, holds: ratio <= limit });
    kit.note(`${label.split('.')[0]}. lsbackup runs ${o.map((x) => fmtMs(x.ms)).join(', ')}; restic runs ${t.map((x) => fmtMs(x.ms)).join(', ')}`);
    kit.log(`${label.split('.')[0]}. ${cell(o, added(o))} vs ${cell(t, added(t))} -> ${ratio.toFixed(2)}`);
  };
  const bytesRow = (label: string, added: number[], limit: number, limitText: string) => {
    const b = median(added);
    kit.addRow({ what: label, ours: `+${fmtBytes(b)}`, base: limitText, ratio: b / limit, target: '≤ 1.00', holds: b <= limit });
  };
  timeRow(`13a. 1st backup of one node's data (${what}) through the CLI vs restic 0.14 (${enc})`, (s) => s.first, 1.0, '≤ 1.00');
  timeRow(`13b. 2nd backup, nothing changed, vs restic`, (s) => s.second, 1.0, '≤ 1.00');
  const perFiles = (MiB * d.files) / 10_000;
  bytesRow(`13b. new bytes of lsbackup's 2nd backup (du of the target) vs 1 MiB per 10,000 files`, ours.map((s) => s.second.added), perFiles, fmtBytes(perFiles));
  timeRow(`13c. 3rd backup after one new ${fmtBytes(d.blockBytes)} block, vs restic`, (s) => s.third, 1.0, '≤ 1.00');
  bytesRow(`13c. new bytes of lsbackup's 3rd backup vs 1.05x the new block`, ours.map((s) => s.third.added), 1.05 * d.blockBytes, `1.05 × ${fmtBytes(d.blockBytes)}`);
  timeRow(`13d. restore of the latest set (CLI, into the wiped directory) vs restic restore (into an empty directory)`, (s) => s.restore, 1.0, '≤ 1.00');
  const o = median(ours.map((s) => s.restore.ms));
  const tx = median(tars.map((t) => t.ms));
  kit.addRow({ what: `13d. the same lsbackup restores vs tar -xzf of the same tree`, ours: cell(ours.map((s) => s.restore)), base: cell(tars), ratio: o / tx, target: '≤ 1.20', holds: o / tx <= 1.2 });
  kit.note(`13d. tar -xzf runs ${tars.map((t) => fmtMs(t.ms)).join(', ')}`);
  kit.note(
    "13. each run is one series per contender: a fresh target (lsbackup) or a fresh `restic init` repository, 1st, 2nd and 3rd backup, restore; new bytes are `du -sb` of the target or repository before and after; lsbackup's CPU is its agent's and coordinator's (not the CLI's), restic's and tar's are the process's",
  );
}
