import { lstatSync, promises as fsp, type Stats } from 'node:fs';
import path from 'node:path';
import { IntegrityError } from '../common/errors.js';
import { DIR_MODE } from '../common/fsutil.js';
import { listSetIds } from '../common/manifest.js';
import { forEachBounded } from '../common/parallel.js';
import { STORE_NAME, storeOfTarget, type Store } from '../common/store.js';
import { humanBytes } from '../common/units.js';
import { addPiecesOf, lastWriteOf, readStayingSets, type StayingSet } from './store-live.js';

/*
 * Garbage collection of a target's content store, in FORMAT.md's two phases ("Garbage collection
 * (prune and delete)"): the mark moves pieces no set that stays names to trash/<now>/, the sweep
 * deletes what an older trash round still holds and no set names, and moves back what a set names
 * again. Every step is one rename or one unlink: a kill at any point leaves each piece in data/
 * or in a trash round, where readers look, and the next run carries on. Nothing here reads a
 * piece's content: a piece's name and its lstat say all the collection needs, and a piece every
 * set still names costs no system call at all.
 */

const AB = /^[0-9a-f]{2}$/;
/** PieceWriter's temp names: `.<id>.<pid>.<random>.tmp`, and a pack's `.<pack>.pack.<pid>.<random>.tmp`. */
const TMP = /^\.[0-9a-f]{64}\..+\.tmp$/;

export interface Tally {
  pieces: number;
  bytes: number;
}

export interface GcOptions {
  /** A piece, temp file or trash round younger than this is left alone (a running backup may name it). */
  graceMs: number;
  /** Count what would be done, change nothing. */
  dryRun: boolean;
  now: Date;
  log?: (line: string) => void;
  /** Sets still on disk that the caller's dry run would have removed: the mark does not count what they name. */
  gone?: ReadonlySet<string>;
}

export interface GcResult {
  /** Why nothing was collected, when nothing was: one line naming the set that stopped it. */
  skipped?: string;
  /** The target has no store (its sets are of formats 1 and 2): there was nothing to collect. */
  noStore?: boolean;
  /** Distinct pieces the sets that stay name. */
  live: number;
  /** Moved (or, in a dry run, to be moved) to the trash by the mark. */
  trashed: Tally;
  /** Deleted by the sweep (or to be). */
  freed: Tally;
  /** Moved back from the trash to data/ by the sweep: a set named them again. */
  rescued: Tally;
  /** Named by no set but younger than the grace period: left in data/. */
  young: Tally;
  /** Temp files of an interrupted writer older than the grace period, deleted by the mark. */
  tmp: Tally;
}

const none = (): Tally => ({ pieces: 0, bytes: 0 });
const add = (t: Tally, bytes: number) => {
  t.pieces++;
  t.bytes += bytes;
};
const fileAt = async (p: string): Promise<Stats | undefined> => {
  const st = await fsp.lstat(p).catch((err: unknown) => (gone(err) ? undefined : Promise.reject(err)));
  return st?.isFile() ? st : undefined;
};
/** ENOENT: someone (an agent's keep(), another prune) moved the file first; where it went is right. */
const gone = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

export async function collectGarbage(target: string, opts: GcOptions): Promise<GcResult> {
  const result: GcResult = { live: 0, trashed: none(), freed: none(), rescued: none(), young: none(), tmp: none() };
  const store = storeOfTarget(target);
  if (!lstatSync(store.dir, { throwIfNoEntry: false })?.isDirectory()) return { ...result, noStore: true };
  const log = opts.log ?? (() => undefined);
  const nowMs = opts.now.getTime();
  const ids = (await listSetIds(target)).filter((id) => !opts.gone?.has(id));

  let sets: StayingSet[];
  try {
    sets = await readStayingSets(target, ids);
  } catch (err) {
    if (err instanceof IntegrityError) return { ...result, skipped: err.message };
    throw err;
  }
  for (const s of sets) {
    if (s.manifest) continue;
    const last = await lastWriteOf(target, s.id);
    if (nowMs - last <= opts.graceMs) return { ...result, skipped: `set ${s.id} has no manifest and was written ${ago(nowMs - last)} ago, within the grace period of ${ago(opts.graceMs)}: a backup may be running` };
  }

  // The mark's memory: one Set entry per distinct piece the sets that stay name, about 110 bytes
  // each (a 64-character string and its slot): 10 million pieces, 80 TiB of 8 MiB pieces or 10
  // million small files, take about 1.1 GB. Everything else is streamed.
  const live = new Set<string>();
  for (const s of sets) {
    try {
      await addPiecesOf(target, s, live);
    } catch (err) {
      if (err instanceof IntegrityError) return { ...result, skipped: err.message };
      throw err;
    }
  }
  result.live = live.size;
  log(`store: ${live.size} pieces named by ${sets.length} sets`);

  const round = String(Math.floor(nowMs / 1000));
  const work = new FileWork();
  for (const ab of await dirNames(store.dataDir, AB)) await markDir(store, ab, round, live, opts, result, work);
  await work.flush();
  for (const r of store.trashRounds()) {
    if (r === round || nowMs - Number(r) * 1000 <= opts.graceMs) continue;
    await sweepRound(store, r, live, opts.dryRun, result, work);
  }
  log(`store: ${storeLine(result, opts.dryRun)}`);
  return result;
}

/**
 * The renames and unlinks of the collection, several at a time: on a busy disk each one waits
 * for the file system's journal (measured: 2,000 unlinks over 256 directories, 3.1 s one after
 * another, 0.5 s 256 at a time), and waits overlap. Held in chunks, so that memory does not grow
 * with the store.
 */
class FileWork {
  private items: (() => Promise<void>)[] = [];
  async add(op: () => Promise<void>): Promise<void> {
    this.items.push(op);
    if (this.items.length >= CHUNK) await this.flush();
  }
  async flush(): Promise<void> {
    const items = this.items;
    this.items = [];
    await forEachBounded(items, LANES, (op) => op());
  }
}
const CHUNK = 4096;
const LANES = 32;

/** The mark in one data/<ab>/ directory. */
async function markDir(store: Store, ab: string, round: string, live: Set<string>, opts: GcOptions, r: GcResult, work: FileWork): Promise<void> {
  const dir = path.join(store.dataDir, ab);
  const to = path.join(store.trashDir, round, ab);
  const old = (st: Stats) => opts.now.getTime() - st.mtimeMs > opts.graceMs;
  let made: Promise<unknown> | undefined;
  for (const name of await dirNames(dir)) {
    const file = path.join(dir, name);
    // A piece or a pack (FORMAT.md "Packs"): both are live by their file name.
    if (STORE_NAME.test(name) && !live.has(name)) {
      await work.add(async () => {
        const st = await fileAt(file);
        if (!st) return;
        if (!old(st)) return add(r.young, st.size);
        if (!opts.dryRun) {
          await (made ??= fsp.mkdir(to, { recursive: true, mode: DIR_MODE }));
          if (!(await moved(file, path.join(to, name)))) return;
        }
        add(r.trashed, st.size);
      });
    } else if (TMP.test(name)) {
      await work.add(async () => {
        const st = await fileAt(file);
        if (!st || !old(st)) return;
        if (!opts.dryRun) await unlinkIfThere(file);
        add(r.tmp, st.size);
      });
    }
  }
}

/** The sweep of one trash round older than the grace period; the round's directories go once empty. */
async function sweepRound(store: Store, round: string, live: Set<string>, dryRun: boolean, r: GcResult, work: FileWork): Promise<void> {
  const roundDir = path.join(store.trashDir, round);
  const abs = await dirNames(roundDir, AB);
  for (const ab of abs) {
    for (const name of await dirNames(path.join(roundDir, ab), STORE_NAME)) {
      const file = path.join(roundDir, ab, name);
      await work.add(async () => {
        const st = await fileAt(file);
        if (!st) return;
        // A piece named again that data/ has already (an agent wrote it anew) needs no second copy.
        if (!live.has(name) || (await fileAt(store.pieceFile(name)))) {
          if (!dryRun) await unlinkIfThere(file);
          return add(r.freed, st.size);
        }
        if (!dryRun) await moveBack(file, store.pieceFile(name));
        add(r.rescued, st.size);
      });
    }
  }
  await work.flush();
  if (dryRun) return;
  for (const ab of abs) await rmdirIfEmpty(path.join(roundDir, ab));
  await rmdirIfEmpty(roundDir);
}

/** Whether `file` went to `to`; false when someone moved it first. */
async function moved(file: string, to: string): Promise<boolean> {
  try {
    await fsp.rename(file, to);
    return true;
  } catch (err) {
    if (gone(err)) return false;
    throw err;
  }
}

async function moveBack(file: string, to: string): Promise<void> {
  try {
    await fsp.rename(file, to);
  } catch (err) {
    if (!gone(err)) throw err;
    if (!(await fileAt(file))) return; // an agent's keep() moved it back first
    await fsp.mkdir(path.dirname(to), { recursive: true, mode: DIR_MODE }); // data/<ab>/ was missing
    await fsp.rename(file, to);
  }
}

async function dirNames(dir: string, only?: RegExp): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if (gone(err)) return [];
    throw err;
  }
  return only ? names.filter((n) => only.test(n)) : names;
}

async function unlinkIfThere(file: string): Promise<void> {
  await fsp.unlink(file).catch((err: unknown) => {
    if (!gone(err)) throw err;
  });
}

/** Something left in a round that is not a piece stays, and so does its directory. */
async function rmdirIfEmpty(dir: string): Promise<void> {
  await fsp.rmdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
  });
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

const tally = (t: Tally) => `${t.pieces} piece${t.pieces === 1 ? '' : 's'} (${humanBytes(t.bytes)})`;

/** What the collection did, for the prune's reply: one line after the sets' lines. */
export function storeLine(r: GcResult, dryRun: boolean): string {
  if (r.skipped) return `store: nothing collected: ${r.skipped}`;
  const tmp = r.tmp.pieces ? `, ${r.tmp.pieces} temp file${r.tmp.pieces === 1 ? '' : 's'} of interrupted backups (${humanBytes(r.tmp.bytes)}) ${dryRun ? 'to delete' : 'deleted'}` : '';
  if (dryRun) return `store: would move ${tally(r.trashed)} to the trash, would free ${tally(r.freed)}, ${r.rescued.pieces} would go back${tmp}`;
  return `store: ${tally(r.trashed)} to the trash, ${tally(r.freed)} freed, ${r.rescued.pieces} back${tmp}`;
}
