import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { IntegrityError, NotFoundError, messageOf } from '../common/errors.js';
import { sha256File } from '../common/hash.js';
import { PIECES_SUFFIX, readManifestIfAny, setDir, type Artifact, type Manifest } from '../common/manifest.js';
import { packName } from '../common/store.js';
import { timeOfId } from './set-time.js';

/*
 * What the mark of the store's garbage collection reads (FORMAT.md "Garbage collection"): which
 * pieces the sets that stay name, and whether one of them is a backup still being written.
 */

const HEX64 = /^[0-9a-f]{64}$/;
/** Format 3's listings are `<name>.tree.jsonl.gz`; a writer's temp name for one still holds that. */
const LISTING = '.tree.jsonl.gz';
/** Format 4's listings are encrypted: the mark reads their clear piece lists, `<name>.pieces.gz`, instead. */
const ENCRYPTED = '.age';

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
 * against its size and SHA-256 in the manifest, its lines against the part's entry count, and
 * every line must be JSON whose `pieces` are piece ids; any failure is an IntegrityError naming
 * the set and the file. An incomplete set: every listing in its part directories, read as far as
 * it goes (one being written ends in the middle of a gzip block and of a line).
 *
 * Why not partEntries, which checks every line against the entry schema: the mark reads every
 * line of every set, and the schema costs six times the JSON parse (measured: 10,000 lines, 1.1 s
 * against 0.17 s); the listing's SHA-256, which the manifest's digest covers, already says it is
 * the listing its backup wrote, and the mark needs nothing of a line but its piece ids.
 */
export async function addPiecesOf(target: string, set: StayingSet, live: Set<string>): Promise<void> {
  const dir = setDir(target, set.id);
  if (!set.manifest) {
    for (const file of await listingsIn(dir)) await forEachPieceId(file, path.relative(dir, file), (id) => live.add(id), false);
    return;
  }
  for (const part of set.manifest.parts) {
    const lists = part.artifacts.filter((a) => a.kind === 'pieces');
    if (lists.length > 0) {
      try {
        for (const a of lists) {
          await checkListing(dir, a);
          await forEachPieceId(path.join(dir, a.path), a.path, (id) => live.add(id), true);
        }
      } catch (err) {
        throw new IntegrityError(`set ${set.id}: ${messageOf(err)}; it might name any piece`);
      }
      continue;
    }
    const trees = part.artifacts.filter((a) => a.kind === 'tree');
    if (trees.length === 0) continue; // formats 1 and 2 keep their data in the set
    try {
      let lines = 0;
      for (const a of trees) {
        await checkListing(dir, a);
        lines += await forEachPieceId(path.join(dir, a.path), a.path, (id) => live.add(id), true);
      }
      if (lines !== part.entryCount) throw new IntegrityError(`the tree artifacts of ${part.node}/${part.component} hold ${lines} entries, its part record says ${part.entryCount}`);
    } catch (err) {
      throw new IntegrityError(`set ${set.id}: ${messageOf(err)}; it might name any piece`);
    }
  }
}

/** A listing is believed only as the manifest names it: a changed one could leave out pieces its set needs. */
async function checkListing(dir: string, a: Artifact): Promise<void> {
  const got = await sha256File(path.join(dir, a.path)).catch((err: NodeJS.ErrnoException) => {
    throw new IntegrityError(err.code === 'ENOENT' ? `${a.path} is missing` : `${a.path} cannot be read: ${messageOf(err)}`);
  });
  if (got.size !== a.size || got.sha256 !== a.sha256) throw new IntegrityError(`${a.path} is not the listing the manifest names (${got.size} bytes, sha256 ${got.sha256.slice(0, 12)}…)`);
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
      for (const f of await names(partDir)) if (f.isFile() && ((f.name.includes(LISTING) && !f.name.includes(`${LISTING}${ENCRYPTED}`)) || f.name.includes(PIECES_SUFFIX))) out.push(path.join(partDir, f.name));
    }
  }
  return out;
}

/**
 * Gives `onId` every piece one listing names, or (format 4) every line of a clear piece list,
 * `<name>.pieces.gz`, told apart by `rel`; gives its number of lines. `strict`, for a committed
 * listing: a damaged gzip, a line that is not JSON or `pieces` that are not piece ids is an
 * IntegrityError naming `rel` (and the line). Not strict, for a listing nobody committed: what can
 * be read counts. Z_SYNC_FLUSH lets gunzip give what it has of a file that ends mid-stream, and a
 * line that does not parse (the cut last one) is passed over. Keeping more than is needed costs a
 * piece's space until the next prune; stopping the collection for it would stop it until the
 * crashed set is pruned.
 */
export async function forEachPieceId(file: string, rel: string, onId: (id: string) => void, strict: boolean): Promise<number> {
  const idsOnly = path.basename(rel).includes(PIECES_SUFFIX);
  const text = new PassThrough();
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024, ...(strict ? {} : { finishFlush: zlib.constants.Z_SYNC_FLUSH }) });
  // The pipeline hands its error to readline's input too: the loop below ends with it.
  const flowing = pipeline(createReadStream(file, { highWaterMark: 1 << 20 }), gunzip, text).catch(() => undefined);
  const lines = createInterface({ input: text, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (idsOnly) {
        // A format-4 piece list: one id per line.
        if (HEX64.test(line)) onId(line);
        else if (strict) throw new IntegrityError(`${rel} line ${n} is not a piece id`);
        continue;
      }
      let pieces: unknown;
      let pack: unknown;
      try {
        ({ pieces, pack } = JSON.parse(line) as { pieces?: unknown; pack?: unknown });
      } catch {
        if (strict) throw new IntegrityError(`${rel} line ${n} is not valid JSON`);
        continue;
      }
      // A packed file's data is its pack's file (FORMAT.md "Packs"); its piece has no file of its own.
      if (pack !== undefined) {
        if (typeof pack === 'string' && HEX64.test(pack)) onId(packName(pack));
        else if (strict) throw new IntegrityError(`${rel} line ${n}: key 'pack': expected 64 lower-case hex digits`);
        continue;
      }
      if (pieces === undefined) continue;
      const ids = Array.isArray(pieces) ? pieces.filter((id): id is string => typeof id === 'string' && HEX64.test(id)) : [];
      if (strict && ids.length !== (pieces as unknown[]).length) throw new IntegrityError(`${rel} line ${n}: key 'pieces': expected a list of piece ids`);
      for (const id of ids) onId(id);
    }
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    // Damaged past some point: a committed listing is refused; of an unfinished one, what came before counts.
    if (strict) throw new IntegrityError(`${rel} is damaged: ${messageOf(err)}`);
  } finally {
    lines.close();
    text.destroy();
    await flowing;
  }
  return n;
}
