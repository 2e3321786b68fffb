import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { IntegrityError, NotFoundError, messageOf } from '../common/errors.js';
import { partEntries } from '../common/entries-file.js';
import { sha256File } from '../common/hash.js';
import { readManifestIfAny, setDir, type Manifest, type Part } from '../common/manifest.js';
import { timeOfId } from './set-time.js';

/*
 * What the mark of the store's garbage collection reads (FORMAT.md "Garbage collection"): which
 * pieces the sets that stay name, and whether one of them is a backup still being written.
 */

const HEX64 = /^[0-9a-f]{64}$/;
/** Format 3's listings are `<name>.tree.jsonl.gz`; a writer's temp name for one still holds that. */
const LISTING = '.tree.jsonl.gz';

/** A set that stays, as the mark sees it: its manifest, or none (incomplete: a running or a crashed backup). */
export interface StayingSet {
  id: string;
  manifest?: Manifest;
}

/**
 * The sets that stay, manifests read. A manifest that cannot be read is an IntegrityError naming
 * the set: the set might name any piece, so the caller collects nothing.
 */
export async function readStayingSets(target: string, ids: string[]): Promise<StayingSet[]> {
  const out: StayingSet[] = [];
  for (const id of ids) {
    try {
      out.push({ id, manifest: await readManifestIfAny(target, id) });
    } catch (err) {
      if (err instanceof NotFoundError) continue; // removed in between: it names nothing any more
      if (err instanceof IntegrityError) throw new IntegrityError(`set ${id} cannot be read (${err.message}); it might name any piece`);
      throw err;
    }
  }
  return out;
}

/**
 * The newest moment an incomplete set was written at: its id (the backup's start) or the newest
 * mtime inside it, whichever is later. A backup that runs longer than the grace period still
 * writes its listings and records, so it counts as running for as long as it writes.
 */
export async function lastWriteOf(target: string, id: string): Promise<number> {
  let newest = timeOfId(id).getTime();
  const walk = async (dir: string, depth: number): Promise<void> => {
    const st = await fsp.lstat(dir).catch(() => undefined);
    if (!st) return;
    newest = Math.max(newest, st.mtimeMs);
    // <set>/<node>/<component>/<file>: nothing an agent writes is deeper.
    if (!st.isDirectory() || depth === 3) return;
    for (const name of await fsp.readdir(dir).catch(() => [] as string[])) await walk(path.join(dir, name), depth + 1);
  };
  await walk(setDir(target, id), 0);
  return newest;
}

/**
 * Adds to `live` every piece the set names. A set with a manifest: each tree artifact is checked
 * against its size and SHA-256 in the manifest, then its lines are read as every reader reads them
 * (partEntries); any failure is an IntegrityError naming the set and the file. An incomplete set:
 * every listing in its part directories, read as far as it goes (one being written ends in the
 * middle of a gzip block and of a line).
 */
export async function addPiecesOf(target: string, set: StayingSet, live: Set<string>): Promise<void> {
  const dir = setDir(target, set.id);
  if (!set.manifest) {
    for (const file of await listingsIn(dir)) await addPiecesOfUnfinished(file, live);
    return;
  }
  for (const part of set.manifest.parts) {
    if (!part.artifacts.some((a) => a.kind === 'tree')) continue; // formats 1 and 2 keep their data in the set
    try {
      await checkListings(dir, part);
      for await (const e of partEntries(dir, part)) for (const id of e.pieces ?? []) live.add(id);
    } catch (err) {
      throw new IntegrityError(`set ${set.id}: ${messageOf(err)}; it might name any piece`);
    }
  }
}

/** A listing is believed only as the manifest names it: a changed one could leave out pieces its set needs. */
async function checkListings(dir: string, part: Part): Promise<void> {
  for (const a of part.artifacts.filter((x) => x.kind === 'tree')) {
    const got = await sha256File(path.join(dir, a.path)).catch((err: NodeJS.ErrnoException) => {
      throw new IntegrityError(err.code === 'ENOENT' ? `${a.path} is missing` : `${a.path} cannot be read: ${messageOf(err)}`);
    });
    if (got.size !== a.size || got.sha256 !== a.sha256) throw new IntegrityError(`${a.path} is not the listing the manifest names (${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}…)`);
  }
}

/** The listing files of an incomplete set: `<set>/<node>/<component>/*.tree.jsonl.gz*`. */
async function listingsIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  const names = async (d: string) => (await fsp.readdir(d, { withFileTypes: true }).catch(() => [])).filter((e) => !e.isSymbolicLink());
  for (const node of await names(dir)) {
    if (!node.isDirectory()) continue;
    for (const component of await names(path.join(dir, node.name))) {
      if (!component.isDirectory()) continue;
      const partDir = path.join(dir, node.name, component.name);
      for (const f of await names(partDir)) if (f.isFile() && f.name.includes(LISTING)) out.push(path.join(partDir, f.name));
    }
  }
  return out;
}

/**
 * The pieces of a listing nobody committed, as far as it can be read: Z_SYNC_FLUSH lets gunzip
 * give what it has of a file that ends mid-stream, and a line that does not parse (the cut last
 * one) is passed over. Keeping more than is needed costs a piece's space until the next prune;
 * stopping the collection for it would stop it until the crashed set is pruned.
 */
async function addPiecesOfUnfinished(file: string, live: Set<string>): Promise<void> {
  const text = new PassThrough();
  const flowing = pipeline(createReadStream(file), zlib.createGunzip({ finishFlush: zlib.constants.Z_SYNC_FLUSH }), text).catch(() => undefined);
  const lines = createInterface({ input: text, crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      let pieces: unknown;
      try {
        pieces = (JSON.parse(line) as { pieces?: unknown }).pieces;
      } catch {
        continue;
      }
      if (Array.isArray(pieces)) for (const id of pieces) if (typeof id === 'string' && HEX64.test(id)) live.add(id);
    }
  } catch {
    // Damaged past some point: what came before it counts, as above.
  } finally {
    lines.close();
    text.destroy();
    await flowing;
  }
}
