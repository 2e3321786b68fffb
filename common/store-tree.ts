import { createWriteStream, promises as fsp, writeFileSync, type BigIntStats } from 'node:fs';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import type { Entry } from './manifest.js';
import { FILE_MODE, readFully } from './fsutil.js';
import { IntegrityError, LsbackupError, messageOf } from './errors.js';
import { entryNameOf } from './archive.js';
import { ExtentFinder, SparseFileWriter, mayBeSparse } from './sparse.js';
import type { Xattrs } from './xattrs.js';
import { timeSlicer } from './parallel.js';
import { SMALL, isSmall, readSmall, walkSources, type Found } from './tree-walk.js';
import { PACKED_MAX, PACK_SUFFIX, PIECE_SIZE, type PackPlace, type PieceWriter, packName, pieceCount, pieceId, pieceSizeAt, type Store } from './store.js';

/*
 * Format 3's trees (FORMAT.md "Format 3"): a listing in the set, the data as pieces in the store.
 * A file unchanged since the parent set is taken from the parent's line without being opened.
 */

export interface StoreTreeOptions {
  level: number;
  exclude?: (absPath: string) => boolean;
  /**
   * A tree of hard links made anew for every backup (Prometheus' snapshot): each new link
   * changes a file's ctime, so ctime is not compared. FORMAT.md says why that is sound there.
   */
  linked?: boolean;
  /** The parent set's lines of this tree, in their order (checked against the parent's record). */
  parent?: AsyncIterable<Entry>;
  writer: PieceWriter;
  listing: { add(e: Entry): Promise<void> };
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  report?: (line: string) => void;
}

export interface TreeCounts {
  files: number;
  /** The files' bytes: what the tree restores. */
  bytes: number;
  /** Files taken from the parent's lines without being read. */
  unchanged: number;
  /** Bytes read from the node's files. */
  bytesRead: number;
}

/**
 * Walk order as a comparable key: the root's index among the sources, then the path's names.
 * The walk sorts names as JavaScript compares strings, and lists a directory before what it holds.
 */
function orderKey(roots: string[], p: string): { root: number; names: string[] } | undefined {
  const root = roots.findIndex((r) => p === r || p.startsWith(r.endsWith('/') ? r : r + '/'));
  if (root < 0) return undefined;
  const rel = p.slice(roots[root]!.length).replace(/^\/+/, '');
  return { root, names: rel ? rel.split('/') : [] };
}

function compareKeys(a: { root: number; names: string[] }, b: { root: number; names: string[] }): number {
  if (a.root !== b.root) return a.root - b.root;
  const n = Math.min(a.names.length, b.names.length);
  for (let i = 0; i < n; i++) if (a.names[i] !== b.names[i]) return a.names[i]! < b.names[i]! ? -1 : 1;
  return a.names.length - b.names.length;
}

/**
 * The parent's lines beside the walk: both go in walk order, so a match costs no memory. With
 * `rebase`, the parent's tree was one root of another name (last night's snapshot directory):
 * its lines are compared as if they were under today's.
 */
class ParentCursor {
  private readonly lines: AsyncIterator<Entry>;
  private current: { e: Entry; key: { root: number; names: string[] } } | undefined;
  private ended = false;
  private parentRoot: string | undefined;
  constructor(
    parent: AsyncIterable<Entry>,
    private readonly roots: string[],
    private readonly rebase: boolean,
  ) {
    this.lines = parent[Symbol.asyncIterator]();
  }
  private keyOfLine(p: string) {
    if (!this.rebase) return orderKey(this.roots, p);
    this.parentRoot ??= p; // the walk's first line is its root
    const root = this.parentRoot;
    if (p !== root && !p.startsWith(root + '/')) return undefined;
    return orderKey(this.roots, this.roots[0] + p.slice(root.length));
  }
  /** The parent's line for `abs`, if it has one; lines before it are passed over. */
  async lineFor(abs: string): Promise<Entry | undefined> {
    const key = orderKey(this.roots, abs);
    if (!key) return undefined;
    for (;;) {
      while (!this.current && !this.ended) {
        const next = await this.lines.next();
        if (next.done) this.ended = true;
        else {
          const k = this.keyOfLine(next.value.path);
          if (k) this.current = { e: next.value, key: k };
        }
      }
      if (!this.current) return undefined;
      const c = compareKeys(this.current.key, key);
      if (c > 0) return undefined;
      const e = this.current.e;
      this.current = undefined;
      if (c === 0) return e;
    }
  }
  async close(): Promise<void> {
    await this.lines.return?.();
  }
}

/** What a file line says of the file's content. */
type Content = Pick<Entry, 'size' | 'sha256' | 'pieces' | 'dataExtents' | 'pack' | 'packAt'>;

/** Whether a parent line stands for the file as lstat sees it now. */
function unchanged(p: Entry, st: BigIntStats, linked: boolean): boolean {
  return p.type === 'file' && !p.linkOf && p.pieces !== undefined && p.size === Number(st.size) && p.mtimeNs === st.mtimeNs.toString() && p.inode === `${st.dev}:${st.ino}` && (linked || p.ctimeNs === st.ctimeNs.toString());
}

/**
 * Lists the given absolute paths (files or trees) into `opts.listing`, storing every file's data
 * as pieces through `opts.writer`; files the parent's lines show unchanged are not opened.
 */
export async function writeStoreTree(artifactPath: string, sources: string[], opts: StoreTreeOptions): Promise<TreeCounts> {
  const counts: TreeCounts = { files: 0, bytes: 0, unchanged: 0, bytesRead: 0 };
  const parent = opts.parent ? new ParentCursor(opts.parent, sources, Boolean(opts.linked) && sources.length === 1) : undefined;
  const firstOfInode = new Map<string, Entry>();

  /** Reads a file and stores its pieces; a large one is hashed while the previous piece is compressed. */
  const readFile = async (abs: string, st: BigIntStats): Promise<Content> => {
    if (isSmall(st)) {
      const data = readSmall(abs, Number(st.size));
      opts.onBytes?.(data.length);
      counts.bytesRead += data.length;
      const sha256 = pieceId(data);
      // Unkeyed, the piece's id is the file's SHA-256: one hash serves both.
      const id = opts.writer.store.codec ? opts.writer.store.idOf(data) : sha256;
      if (data.length === 0) return { size: 0, sha256, pieces: [] };
      // lstat's size may be older than the bytes read: what was read decides. An encrypted
      // backup reads every file and finds what is stored by its id: it packs nothing (FORMAT.md "Packs").
      if (data.length <= PACKED_MAX && !opts.writer.store.codec) return { size: data.length, sha256, pieces: [id], ...(await opts.writer.putPacked(id, data, opts.level)) };
      await opts.writer.put(id, data, opts.level);
      return { size: data.length, sha256, pieces: [id] };
    }
    const size = Number(st.size);
    const whole = createHash('sha256');
    const extents = mayBeSparse(st) ? new ExtentFinder(Number(st.blksize) || 4096) : undefined;
    const pieces: string[] = [];
    // A small file that isSmall passes over (a hard link's first name, a sparse file) is packed too.
    const packable = size <= PACKED_MAX && !opts.writer.store.codec;
    let place: PackPlace | undefined;
    const fh = await fsp.open(abs, 'r');
    let storing: Promise<void> | undefined;
    // Two piece buffers in turn: one is read into while the other is being stored (storing is
    // awaited before the next read reuses its buffer). A fresh 8 MiB buffer per piece made the
    // agent's thread spend a tenth of a backup in the garbage collector (bench item 13).
    const ring: Buffer[] = [];
    try {
      for (let i = 0; i < pieceCount(size); i++) {
        if (opts.signal?.aborted) throw new LsbackupError('backup cancelled');
        const want = pieceSizeAt(size, i);
        const slot = (ring[i % 2] ??= Buffer.allocUnsafe(Math.min(size, PIECE_SIZE)));
        const buf = want === slot.length ? slot : slot.subarray(0, want);
        const got = await readFully(fh, buf, i * PIECE_SIZE);
        if (got < want) throw new LsbackupError(`${abs} shrank while it was read (${i * PIECE_SIZE + got} of the ${size} bytes lstat gave)`);
        whole.update(buf);
        extents?.add(buf);
        const id = opts.writer.store.idOf(buf);
        pieces.push(id);
        await storing;
        // The file is this one piece: the ring's buffer is the pack's from here on.
        if (packable) place = await opts.writer.putPacked(id, buf, opts.level);
        else storing = opts.writer.put(id, buf, opts.level);
        opts.onBytes?.(want);
        counts.bytesRead += want;
      }
      await storing;
    } finally {
      await storing?.catch(() => undefined);
      await fh.close();
    }
    // What lstat said is stored, as GNU tar does with a file that grows while it is read.
    const dataExtents = extents?.sparseExtents(size);
    return { size, sha256: whole.digest('hex'), pieces, ...(dataExtents ? { dataExtents } : {}), ...place };
  };

  const add = async ({ abs, st, data, xattrs }: Found & { xattrs?: Xattrs }): Promise<void> => {
    if (opts.signal?.aborted) throw new LsbackupError('backup cancelled');
    // A line is one object literal with its fields set in turn: spreading a base line and then
    // overriding its size and sha256 took V8's slow path, 12 µs a line, a tenth of a backup in
    // which nothing changed (bench item 13). Readers do not depend on the keys' order.
    const line = (type: Entry['type'], linkTarget: string, size: number, sha256: string): Entry => {
      const e: Entry = { archive: artifactPath, name: entryNameOf(abs), path: abs, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), mtimeNs: st.mtimeNs.toString(), linkTarget, sha256, size, type };
      if (xattrs) e.xattrs = xattrs;
      return e;
    };
    if (st.isSymbolicLink()) return opts.listing.add(line('symlink', data as string, 0, ''));
    if (st.isDirectory()) return opts.listing.add(line('dir', '', 0, ''));
    if (!st.isFile()) return; // sockets, fifos and devices are not configuration
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1n ? firstOfInode.get(inode) : undefined;
    if (first) {
      const link = line('file', '', first.size, first.sha256);
      link.linkOf = first.path;
      return opts.listing.add(link);
    }
    counts.files++;
    const before = await parent?.lineFor(abs);
    let content: Content | undefined;
    // A piece that left the store (a prune between the parent and now) is read from the file again.
    if (before && unchanged(before, st, Boolean(opts.linked)) && (before.pack !== undefined ? opts.writer.hasPack(before.pack) : before.pieces!.every((id) => opts.writer.has(id)))) {
      content = before;
      counts.unchanged++;
      opts.onBytes?.(before.size);
    } else {
      content = await readFile(abs, st);
    }
    counts.bytes += content.size;
    const entry = line('file', '', content.size, content.sha256);
    entry.pieces = content.pieces;
    if (content.dataExtents) entry.dataExtents = content.dataExtents;
    if (content.pack !== undefined) {
      entry.pack = content.pack;
      entry.packAt = content.packAt;
    }
    entry.inode = inode;
    entry.ctimeNs = st.ctimeNs.toString();
    await opts.listing.add(entry);
    if (st.nlink > 1n) firstOfInode.set(inode, entry);
  };

  try {
    const breathe = timeSlicer();
    for await (const f of walkSources(sources, { exclude: opts.exclude, readFiles: false, report: opts.report })) {
      await add(f);
      await breathe();
    }
  } finally {
    await parent?.close();
  }
  return counts;
}

/** A file line's pieces, checked against its size: the list says where each piece goes. */
function piecesOf(e: Entry): string[] {
  const pieces = e.pieces;
  if (!pieces) throw new IntegrityError(`${e.path}: its line names no pieces`);
  if (pieces.length !== pieceCount(e.size)) throw new IntegrityError(`${e.path}: ${pieces.length} pieces for ${e.size} bytes, expected ${pieceCount(e.size)}`);
  return pieces;
}

/**
 * Piece `i` of a file line, from its own store file or from the line's pack; checked against its
 * id and size. That `pack` comes with `packAt` on a line of one piece, entryProblem checked as the line was read.
 */
function readPiece(store: Store, e: Entry, pieces: string[], i: number): Promise<Buffer> {
  if (e.pack !== undefined) return store.readPacked({ pack: e.pack, packAt: e.packAt! }, pieces[0]!, e.size);
  return store.read(pieces[i]!, pieceSizeAt(e.size, i));
}

/** As readPiece, synchronously: a small file of an unencrypted store. */
function readPieceSync(store: Store, e: Entry, pieces: string[]): Buffer {
  if (e.pack !== undefined) return store.readPackedSync({ pack: e.pack, packAt: e.packAt! }, pieces[0]!, e.size);
  return store.readSync(pieces[0]!, e.size);
}

/** Pieces read ahead of the writer: the next ones are read and checked while one is written. */
const READ_AHEAD = 3;

async function* contentOf(store: Store, e: Entry, pieces: string[], onBytes?: (n: number) => void): AsyncGenerator<Buffer> {
  const reads: Promise<Buffer>[] = [];
  let next = 0;
  const more = () => {
    while (reads.length < READ_AHEAD && next < pieces.length) {
      const i = next++;
      const r = readPiece(store, e, pieces, i);
      r.catch(() => undefined); // awaited below, in order
      reads.push(r);
    }
  };
  more();
  while (reads.length) {
    const piece = await reads.shift()!;
    more();
    onBytes?.(piece.length);
    yield piece;
  }
}

/**
 * Writes every file of a format-3 tree to `destFor(entry)` (skipped where that gives undefined)
 * from its pieces, each checked against its id and size as it is read. A missing or bad piece
 * refuses the restore with one line naming the piece and the file.
 *
 * A file of several pieces is not hashed whole again: the restore has checked the listing against
 * the manifest, so the line's pieces are the ones backed up, and each piece is checked against
 * its id, which is its SHA-256 (or keyed MAC). The whole-file SHA-256 would repeat those checks at
 * a third of the restore's CPU (bench item 13); verify still compares it.
 */
export async function extractStoreTree(store: Store, entries: Iterable<Entry> | AsyncIterable<Entry>, destFor: (e: Entry) => string | undefined, onBytes?: (n: number) => void): Promise<void> {
  const breathe = timeSlicer();
  // Large files are written several at once (each reading ahead of itself); small ones in turn, synchronously.
  const running = new Set<Promise<void>>();
  let failure: unknown;
  const restoreOne = async (e: Entry, dest: string, pieces: string[]): Promise<void> => {
    try {
      // Unkeyed, a file of one piece or none has that piece's id (or the empty SHA-256) as its sha256: a check that costs nothing.
      if (!store.codec && pieces.length <= 1 && (pieces[0] ?? EMPTY_SHA256) !== e.sha256) throw new IntegrityError(`its line's sha256 is not that of its piece`);
      if (e.size <= SMALL && !e.dataExtents) {
        // One synchronous read and write: for a file of a few KiB, a third of the CPU of the promise forms (timeSlicer).
        const data = pieces.length ? (store.codec ? await readPiece(store, e, pieces, 0) : readPieceSync(store, e, pieces)) : Buffer.alloc(0);
        onBytes?.(data.length);
        writeFileSync(dest, data, { mode: FILE_MODE });
        return;
      }
      const out: Writable = e.dataExtents ? new SparseFileWriter(dest, e.dataExtents, e.size, FILE_MODE) : createWriteStream(dest, { mode: FILE_MODE, highWaterMark: 1 << 20 });
      // The file's length needs no count here: piecesOf checked the pieces' number against its size, and read() each piece's size.
      await pipeline(Readable.from(contentOf(store, e, pieces, onBytes)), out);
    } catch (err) {
      await fsp.rm(dest, { force: true });
      throw new IntegrityError(`${e.path}: ${messageOf(err)}; refusing to restore`);
    }
  };
  try {
    for await (const e of entries) {
      if (failure) break;
      if (e.type !== 'file' || e.linkOf) continue;
      const dest = destFor(e);
      if (!dest) continue;
      const pieces = piecesOf(e);
      if (e.size <= SMALL && !e.dataExtents) {
        await restoreOne(e, dest, pieces);
        await breathe();
        continue;
      }
      while (running.size >= FILES_AT_ONCE) await Promise.race(running);
      const job: Promise<void> = restoreOne(e, dest, pieces).catch((err: unknown) => void (failure ??= err)).finally(() => running.delete(job));
      running.add(job);
    }
  } finally {
    await Promise.all(running);
  }
  if (failure) throw failure;
}

/** Large files written at once by a restore: enough to keep the thread pool's gunzips and the disk busy. */
const FILES_AT_ONCE = 3;

const EMPTY_SHA256 = createHash('sha256').digest('hex');

/**
 * Verify of a packed file's piece: its pack once per run (missing, or not a gzip: every file in
 * it is bad, and the pack is what is named), then the piece itself if `sample` picks its pack. The
 * verdicts' keys are `<pack>.pack` and `<id>@<pack>+<packAt>`: the same bytes may lie in
 * several packs, and one copy's damage is not another's.
 */
async function checkPacked(store: Store, e: Entry, id: string, verdicts: PieceVerdicts, opts: { sample?: (id: string) => boolean; onBytes?: (n: number) => void }): Promise<{ key: string; problem: string } | undefined> {
  const pack = e.pack!;
  const packKey = packName(pack);
  if (!verdicts.has(packKey)) verdicts.set(packKey, store.locate(packKey) ? undefined : `pack ${pack} is missing from the store`);
  if (verdicts.get(packKey)) return { key: packKey, problem: verdicts.get(packKey)! };
  // Sampled by pack: a pack is read whole for any piece of it, so a share of pieces would read nearly every pack.
  if (opts.sample && !opts.sample(pack)) return undefined;
  const key = `${id}@${pack}+${e.packAt}`;
  if (!verdicts.has(key)) {
    let content: Buffer;
    try {
      // The store holds the last packs read, gunzipped: a pack's files come one after another.
      content = await store.packContent(pack);
    } catch (err) {
      // The pack as a whole (damaged, gone since): named once, for every file in it.
      verdicts.set(packKey, messageOf(err));
      return { key: packKey, problem: messageOf(err) };
    }
    let verdict: string | undefined;
    try {
      const data = store.pieceOfPack({ pack, packAt: e.packAt! }, content, id, e.size);
      opts.onBytes?.(data.length);
      // Packs are unencrypted (packContent refuses one in an encrypted store): the piece's id is the file's SHA-256.
      if (id !== e.sha256) verdict = `sha256 mismatch (its line's sha256 is not its content's)`;
    } catch (err) {
      verdict = messageOf(err);
    }
    verdicts.set(key, verdict);
  }
  const bad = verdicts.get(key);
  return bad ? { key, problem: bad } : undefined;
}

/** What a verdict's key names, for the line that says which sets use it. */
export function badPieceName(key: string): string {
  const at = key.indexOf('@');
  if (at > 0) return `piece ${key.slice(0, at)} in pack ${key.slice(at + 1, key.indexOf('+'))}`;
  if (key.endsWith(PACK_SUFFIX)) return `pack ${key.slice(0, -PACK_SUFFIX.length)}`;
  return `piece ${key}`;
}

/** What verify found of each piece it read: undefined when good, else the problem. Shared by every tree and set of one run. */
export type PieceVerdicts = Map<string, string | undefined>;

/**
 * Checks every piece a format-3 tree names, each once per run however many files and sets name
 * it (`verdicts`), reading those `sample` picks and looking up the others. One line per file whose
 * piece is missing or bad, naming the listing, the file and the piece.
 */
export async function checkStoreTree(store: Store, artifactPath: string, entries: AsyncIterable<Entry>, verdicts: PieceVerdicts, opts: { sample?: (id: string) => boolean; onBytes?: (n: number) => void; badPieces?: Set<string> } = {}): Promise<string[]> {
  const problems: string[] = [];
  try {
    for await (const e of entries) {
      if (e.type !== 'file' || e.linkOf) continue;
      let pieces: string[];
      try {
        pieces = piecesOf(e);
      } catch (err) {
        problems.push(`${artifactPath}: ${messageOf(err)}`);
        continue;
      }
      if (e.pack !== undefined) {
        const bad = await checkPacked(store, e, pieces[0]!, verdicts, opts);
        if (bad) {
          problems.push(`${artifactPath}: ${e.path}: ${bad.problem}`);
          opts.badPieces?.add(bad.key);
        }
        continue;
      }
      // The whole file's sha256 is compared when its content is at hand: one piece is the file,
      // and a file whose every piece is read in this pass is hashed on the way.
      // Keyed ids (format 4) are not the content's SHA-256: there one piece is hashed as many are.
      const keyed = Boolean(store.codec);
      if ((pieces.length === 0 || (!keyed && pieces.length === 1)) && (pieces[0] ?? EMPTY_SHA256) !== e.sha256) problems.push(`${artifactPath}: ${e.path}: sha256 mismatch (its line's sha256 is not its content's)`);
      const whole = pieces.length > (keyed ? 0 : 1) && pieces.every((id) => !verdicts.has(id) && (!opts.sample || opts.sample(id))) ? createHash('sha256') : undefined;
      for (let i = 0; i < pieces.length; i++) {
        const id = pieces[i]!;
        if (!verdicts.has(id)) {
          let verdict: string | undefined;
          if (opts.sample && !opts.sample(id)) verdict = store.locate(id) ? undefined : `piece ${id} is missing from the store`;
          else {
            try {
              const data = await readPiece(store, e, pieces, i);
              whole?.update(data);
              opts.onBytes?.(data.length);
            } catch (err) {
              verdict = messageOf(err);
            }
          }
          verdicts.set(id, verdict);
        }
        const bad = verdicts.get(id);
        if (bad) {
          problems.push(`${artifactPath}: ${e.path}: ${bad}`);
          opts.badPieces?.add(id);
        }
      }
      if (whole && pieces.every((id) => !verdicts.get(id)) && whole.digest('hex') !== e.sha256) problems.push(`${artifactPath}: ${e.path}: sha256 mismatch (its pieces are good, the whole file's sha256 is not its line's)`);
    }
  } catch (err) {
    problems.push(err instanceof IntegrityError ? err.message : `${artifactPath}: not readable: ${messageOf(err)}`);
  }
  return problems;
}

