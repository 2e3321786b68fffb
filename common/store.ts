import { closeSync, fsyncSync, lstatSync, openSync, promises as fsp, readFileSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { IntegrityError, messageOf } from './errors.js';
import { DIR_MODE, FILE_MODE, readFully } from './fsutil.js';
import { run } from './exec.js';

/*
 * The content store of format 3 (FORMAT.md "Format 3"): file data once per target, one gzip file
 * per piece, named by the SHA-256 of the piece's bytes. Whether a piece is there is one lstat;
 * nothing of the store is held in memory.
 */

export const STORE_DIR = 'store';
export const STORE_FORMAT = 'lsbackup-store/1';
/** Files are cut into pieces of this size; FORMAT.md says why fixed pieces. */
export const PIECE_SIZE = 8 << 20;
/** A pack's file name is its 64 digits and this. */
export const PACK_SUFFIX = '.pack';
/** A store file's name: a piece's id, or a pack's digits and PACK_SUFFIX. */
export const STORE_NAME = /^[0-9a-f]{64}(\.pack)?$/;

/** Files of at most this many bytes are stored in packs (FORMAT.md "Packs"). */
export const PACKED_MAX = 64 * 1024;
/** A pack is closed once its pieces reach this many bytes. */
export const PACK_SIZE = 1 << 20;
/** What a pack holds at most: PACK_SIZE less a byte, plus a last piece. */
const PACK_MAX = PACK_SIZE + PACKED_MAX;
/** The file name of pack `pack` (its 64 digits) in data/<ab>/. */
export const packName = (pack: string): string => `${pack}${PACK_SUFFIX}`;
/** Where a packed file's piece is: the pack's digits and the offset among its gunzipped bytes. */
export interface PackPlace {
  pack: string;
  packAt: number;
}

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);

/*
 * zlib's default 16 KiB output chunks cost a third of gunzip's speed on an 8 MiB piece (500 of
 * 1,300 MB/s here; bench item 13): every chunk is a buffer, joined at the end. An output buffer a
 * little larger than the whole result takes it in one step; just as large would need a second
 * step for the stream's end. For gzip the bound is zlib's deflateBound plus the gzip frame.
 */
const gunzipOptions = (size: number | undefined): zlib.ZlibOptions => {
  const out = (size ?? PIECE_SIZE) + 64;
  return { chunkSize: out, maxOutputLength: Math.max(out, PIECE_SIZE + 64) };
};
/*
 * Z_FINISH on the one write: by default the data is deflated with Z_NO_FLUSH and its end by a second
 * call, two output buffers joined by a copy; in one call at level 0 gzip runs at 4 GB/s, not 0.6.
 */
const gzipOptions = (size: number, level: number): zlib.ZlibOptions => ({ level, chunkSize: Math.max(64, size + (size >> 10) + 1024), flush: zlib.constants.Z_FINISH });
/** A stored piece is at most a piece plus gzip's and age's framing; a larger file is not one. */
const MAX_STORED = PIECE_SIZE * 2;

/** The pieces a file of `size` bytes is cut into: their count, and the size of the one at `i`. */
export const pieceCount = (size: number): number => Math.ceil(size / PIECE_SIZE);
export const pieceSizeAt = (size: number, i: number): number => Math.min(PIECE_SIZE, size - i * PIECE_SIZE);

export const pieceId = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * How a format-4 store names and seals its pieces (FORMAT.md "Format 4"): ids keyed with the
 * set's idKey, stored bytes an age file of the gzip member. `open` is absent where no identity
 * is at hand (an agent's backup): such a store writes pieces and never reads one.
 */
export interface PieceCodec {
  idOf(data: Buffer): string;
  seal(packed: Buffer): Buffer;
  /** The gzip member inside a stored piece, in the chunks it was decrypted in. */
  open?(stored: Buffer, what: string): Promise<Buffer[]>;
}

/** The store beside a set directory (`<target>/<id>` -> `<target>/store`). */
export const storeOfSet = (setDir: string, codec?: PieceCodec): Store => new Store(path.join(path.dirname(setDir), STORE_DIR), codec);
export const storeOfTarget = (target: string, codec?: PieceCodec): Store => new Store(path.join(target, STORE_DIR), codec);

/** Checks store.json, or writes it once: agents on several nodes may race, each renames the same bytes. */
async function describe(desc: string): Promise<void> {
  try {
    const text = await fsp.readFile(desc, 'utf8');
    const d = JSON.parse(text) as { format?: unknown; pieceSize?: unknown };
    if (d.format !== STORE_FORMAT || d.pieceSize !== PIECE_SIZE) throw new IntegrityError(`${desc} describes a store this lsbackup does not write (${text.trim().slice(0, 200)})`);
  } catch (err) {
    if (err instanceof IntegrityError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new IntegrityError(`${desc} is not readable: ${messageOf(err)}`);
    const tmp = `${desc}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await fsp.writeFile(tmp, JSON.stringify({ format: STORE_FORMAT, pieceSize: PIECE_SIZE }) + '\n', { mode: FILE_MODE });
    fsyncFile(tmp);
    await fsp.rename(tmp, desc);
    fsyncFile(path.dirname(desc));
  }
}

export class Store {
  readonly dataDir: string;
  readonly trashDir: string;
  constructor(
    readonly dir: string,
    readonly codec?: PieceCodec,
  ) {
    this.dataDir = path.join(dir, 'data');
    this.trashDir = path.join(dir, 'trash');
  }

  /** Makes the store's directories (owner-only) and its store.json, once; several agents may race here. */
  async ensure(): Promise<void> {
    await fsp.mkdir(this.dataDir, { recursive: true, mode: DIR_MODE });
    await fsp.mkdir(this.trashDir, { recursive: true, mode: DIR_MODE });
    const names = new Set(await fsp.readdir(this.dataDir));
    for (let i = 0; i < 256; i++) {
      const ab = i.toString(16).padStart(2, '0');
      if (!names.has(ab)) await fsp.mkdir(path.join(this.dataDir, ab), { mode: DIR_MODE }).catch((err: NodeJS.ErrnoException) => (err.code === 'EEXIST' ? undefined : Promise.reject(err)));
    }
    const desc = path.join(this.dir, 'store.json');
    await describe(desc);
  }

  /** The id of a piece of `data`: its SHA-256, or in an encrypted store its keyed MAC. */
  idOf(data: Buffer): string {
    return this.codec ? this.codec.idOf(data) : pieceId(data);
  }

  /** Where store file `name` (a piece's id, or a pack's name) is in data/. */
  pieceFile(name: string): string {
    return path.join(this.dataDir, name.slice(0, 2), name);
  }

  /** The trash directories, oldest first (their names are the seconds they were made at). */
  trashRounds(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.trashDir);
    } catch {
      return [];
    }
    return names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
  }

  /** Where piece `id` (or pack file `name`) is: data/, or a trash round a prune moved it to; undefined when it is in neither. */
  locate(id: string, rounds = this.trashRounds()): string | undefined {
    if (!STORE_NAME.test(id)) throw new IntegrityError(`'${id.slice(0, 80)}' is not a piece id`);
    const file = this.pieceFile(id);
    if (lstatSync(file, { throwIfNoEntry: false })?.isFile()) return file;
    for (const r of rounds) {
      const t = path.join(this.trashDir, r, id.slice(0, 2), id);
      if (lstatSync(t, { throwIfNoEntry: false })?.isFile()) return t;
    }
    return undefined;
  }

  /**
   * Makes sure piece `id` is in data/: a piece a prune has just moved to the trash goes back
   * (FORMAT.md "Garbage collection"). False when it is nowhere.
   */
  keep(id: string, rounds?: string[]): boolean {
    const at = this.locate(id, rounds);
    if (!at) return false;
    const file = this.pieceFile(id);
    if (at === file) return true;
    try {
      renameSync(at, file);
      return true;
    } catch (err) {
      // Another agent (or the sweep) moved it in between: what matters is where it is now.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return lstatSync(file, { throwIfNoEntry: false })?.isFile() ?? false;
      throw err;
    }
  }

  /**
   * Piece `id` as its bytes, checked: gunzipped, `size` long (when given) and hashing to its id.
   * One line naming the piece when it is missing or differs.
   */
  async read(id: string, size?: number): Promise<Buffer> {
    const file = this.locate(id);
    if (!file) throw new IntegrityError(`piece ${id} is missing from the store`);
    let data: Buffer;
    const stored = await readStored(file, `piece ${id}`);
    let packed: Buffer[] | undefined;
    if (this.codec) {
      if (!this.codec.open) throw new IntegrityError(`piece ${id} is encrypted, and no identity was given to read it`);
      packed = await this.codec.open(stored, `piece ${id}`);
    }
    try {
      data = packed ? await gunzipChunks(packed, size) : await gunzip(stored, gunzipOptions(size));
    } catch (err) {
      throw new IntegrityError(`piece ${id} is damaged: ${messageOf(err)}`);
    }
    return this.checkPiece(id, data, size);
  }

  /** As read(), synchronously: for the pieces of small files, which cost less this way than as promises. */
  readSync(id: string, size?: number): Buffer {
    if (this.codec) throw new IntegrityError(`piece ${id} is encrypted: it is read with read(), not readSync()`);
    const file = this.locate(id);
    if (!file) throw new IntegrityError(`piece ${id} is missing from the store`);
    let data: Buffer;
    try {
      data = zlib.gunzipSync(readFileSync(file), gunzipOptions(size));
    } catch (err) {
      throw new IntegrityError(`piece ${id} is damaged: ${messageOf(err)}`);
    }
    return this.checkPiece(id, data, size);
  }

  /** A packed file's piece, checked as read() checks a piece: `size` long and hashing to `id`. */
  async readPacked(place: PackPlace, id: string, size: number): Promise<Buffer> {
    return this.pieceOfPack(place, await this.packContent(place.pack), id, size);
  }

  /** As readPacked(), synchronously. */
  readPackedSync(place: PackPlace, id: string, size: number): Buffer {
    return this.pieceOfPack(place, this.packContentSync(place.pack), id, size);
  }

  /** Pack `pack` gunzipped, or an IntegrityError naming the pack (missing, damaged, unreadable). */
  async packContent(pack: string): Promise<Buffer> {
    const content = this.packs.get(pack) ?? this.remember(pack, await readStored(this.packFile(pack), `pack ${pack}`).then((stored) => gunzipPack(pack, stored)).catch((err: unknown) => packError(pack, err)));
    if (content instanceof IntegrityError) throw content;
    return content;
  }

  private packContentSync(pack: string): Buffer {
    let content = this.packs.get(pack);
    if (content === undefined) {
      try {
        content = this.remember(pack, gunzipPack(pack, readFileSync(this.packFile(pack))));
      } catch (err) {
        content = this.remember(pack, packError(pack, err));
      }
    }
    if (content instanceof IntegrityError) throw content;
    return content;
  }

  /** The piece at `place` of a pack's content, checked as read() checks a piece. */
  pieceOfPack(place: PackPlace, content: Buffer, id: string, size: number): Buffer {
    if (!Number.isSafeInteger(place.packAt) || place.packAt < 0 || place.packAt + size > content.length) throw new IntegrityError(`piece ${id} is said to lie at ${place.packAt}-${place.packAt + size} of pack ${place.pack}, which holds ${content.length} bytes`);
    return this.checkPiece(id, content.subarray(place.packAt, place.packAt + size), size);
  }

  /**
   * The last few packs read, gunzipped (or why they could not be): a tree's files come pack by
   * pack, so each is read once, and a bad one is named for each of its files without being read again.
   */
  private readonly packs = new Map<string, Buffer | IntegrityError>();
  private remember(pack: string, content: Buffer | IntegrityError): Buffer | IntegrityError {
    if (this.packs.size >= PACKS_HELD) this.packs.delete(this.packs.keys().next().value!);
    this.packs.set(pack, content);
    return content;
  }

  private packFile(pack: string): string {
    if (this.codec) throw new IntegrityError(`pack ${pack} is named by an encrypted set, and encrypted backups write no packs`);
    const file = this.locate(packName(pack));
    if (!file) throw new IntegrityError(`pack ${pack} is missing from the store`);
    return file;
  }

  private checkPiece(id: string, data: Buffer, size?: number): Buffer {
    if (size !== undefined && data.length !== size) throw new IntegrityError(`piece ${id} holds ${data.length} bytes where ${size} are expected`);
    if (this.idOf(data) !== id) throw new IntegrityError(`piece ${id} is damaged: its content does not hash to its name${this.codec ? ' (under the set\'s key)' : ''}`);
    return data;
  }
}

/** Packs held gunzipped by a reader: at most PACKS_HELD x 1.06 MiB. */
const PACKS_HELD = 4;

const packError = (pack: string, err: unknown): IntegrityError => (err instanceof IntegrityError ? err : new IntegrityError(`pack ${pack} cannot be read: ${messageOf(err)}`));

function gunzipPack(pack: string, stored: Buffer): Buffer {
  try {
    return zlib.gunzipSync(stored, { chunkSize: PACK_MAX + 64, maxOutputLength: PACK_MAX });
  } catch (err) {
    throw new IntegrityError(`pack ${pack} is damaged: ${messageOf(err)}`);
  }
}

/**
 * A stored piece's bytes in one read of its size: fs.readFile reads in 512 KiB steps, at a sixth
 * of the speed for an 8 MiB piece (1.5 against 9 GB/s from the page cache here).
 */
async function readStored(file: string, what: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size > MAX_STORED) throw new IntegrityError(`${what} is damaged: its file holds ${size} bytes, more than a piece is stored in`);
    const buf = Buffer.allocUnsafe(size);
    const got = await readFully(fh, buf, 0);
    return got === size ? buf : buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/** gunzip of a buffer given in chunks, in the thread pool as zlib.gunzip is, without joining the input first. */
function gunzipChunks(chunks: Buffer[], size: number | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const z = zlib.createGunzip({ chunkSize: gunzipOptions(size).chunkSize });
    const out: Buffer[] = [];
    z.on('data', (b: Buffer) => out.push(b));
    z.on('end', () => resolve(out.length === 1 ? out[0]! : Buffer.concat(out)));
    z.on('error', reject);
    for (const c of chunks) z.write(c);
    z.end();
  });
}

/** Deflating costs CPU for nothing on data that is compressed already: its first 64 KiB at level 1 tell. */
const PROBE = 64 * 1024;
export function levelFor(data: Buffer, level: number): number {
  if (level === 0 || data.length < PROBE) return level;
  const probe = zlib.deflateRawSync(data.subarray(0, PROBE), { level: 1 });
  return probe.length > PROBE * 0.9 ? 0 : level;
}

/** New pieces are made durable and named in batches of at most this many, or bytes. */
const BATCH_PIECES = 4096;
const BATCH_BYTES = 256 << 20;
/** Up to this many files (or directories) are fsynced one by one; more take one syncfs. */
const FSYNC_EACH = 16;
/** Small pieces this writer remembers the place of: about 4 MB of heap at most (65,536 took 35 MB, measured). */
const RECENT_PACKED = 8192;
/** Pieces up to this size are compressed and written on the agent's thread; larger ones in the thread pool. */
const SMALL_PIECE = 256 * 1024;

/**
 * Writes a backup's new pieces into the store, in the order FORMAT.md gives: every piece under a
 * temp name, one syncfs for the batch, then the renames; finish() makes the names durable. A
 * piece is never written twice, by this writer or anyone before it.
 */
export class PieceWriter {
  /** Pieces written under their temp names, not yet in a batch being made durable. */
  private pending = new Map<string, string>();
  /** The batch whose syncfs and renames run while the next batch is written (at most one). */
  private syncing = new Map<string, string>();
  private syncDone: Promise<void> | undefined;
  /** Directories (`<ab>`) pieces were renamed into since the last finish(). */
  private readonly renamedIn = new Set<string>();
  private pendingBytes = 0;
  private readonly rounds: string[];
  /** The pack being filled (FORMAT.md "Packs"), and the one before it, deflated and written in the thread pool meanwhile. */
  private pack: { id: string; parts: Buffer[]; bytes: number; level: number } | undefined;
  private packing: Promise<void> | undefined;
  /** Where this writer put its last small pieces: the same bytes twice in a part are stored once. */
  private readonly packed = new Map<string, PackPlace>();
  /** Packs of the parent's lines looked up in this backup, and whether they are there. */
  private readonly packsFound = new Map<string, boolean>();
  private aborted = false;
  /** Bytes this writer added to the store (as stored). */
  newBytes = 0;
  newPieces = 0;
  /** Pieces found in the store already. */
  reused = 0;
  private readonly suffix = `${process.pid}.${randomBytes(6).toString('hex')}.tmp`;

  constructor(readonly store: Store) {
    this.rounds = store.trashRounds();
  }

  /** Whether piece `id` is in the store (or this writer's batches): back from the trash if a prune has just put it there. */
  has(id: string): boolean {
    if (this.pending.has(id) || this.syncing.has(id)) return true;
    return this.store.keep(id, this.rounds);
  }

  /** Whether pack `pack` is in the store (back from the trash if a prune has just put it there); looked up once per backup. */
  hasPack(pack: string): boolean {
    let found = this.packsFound.get(pack);
    if (found === undefined) {
      found = this.store.keep(packName(pack), this.rounds);
      this.packsFound.set(pack, found);
    }
    return found;
  }

  /**
   * Puts a small file's piece (at most PACKED_MAX bytes) into the current pack, unless this
   * writer packed the same bytes lately; where it is. `data` is kept until the pack is written.
   */
  async putPacked(id: string, data: Buffer, level: number): Promise<PackPlace> {
    const known = this.packed.get(id);
    if (known) {
      this.reused++;
      return known;
    }
    const pack = (this.pack ??= { id: randomBytes(32).toString('hex'), parts: [], bytes: 0, level });
    const place = { pack: pack.id, packAt: pack.bytes };
    pack.parts.push(data);
    pack.bytes += data.length;
    this.newPieces++;
    if (this.packed.size >= RECENT_PACKED) this.packed.clear();
    this.packed.set(id, place);
    if (pack.bytes >= PACK_SIZE) await this.closePack();
    await this.syncIfFull();
    return place;
  }

  /**
   * Deflates and writes the current pack in the thread pool, as a piece under a temp name; the
   * agent's thread fills the next one meanwhile. The pack before it is waited for first.
   */
  private async closePack(): Promise<void> {
    const pack = this.pack;
    if (!pack) return;
    this.pack = undefined;
    await this.packing;
    const name = packName(pack.id);
    const tmp = path.join(this.store.dataDir, name.slice(0, 2), `.${name}.${this.suffix}`);
    const writing = (async () => {
      const content = Buffer.concat(pack.parts, pack.bytes);
      const gz = await gzip(content, gzipOptions(content.length, pack.level));
      await writeWhole(tmp, gz);
      if (this.aborted) return rmSync(tmp, { force: true });
      this.pending.set(name, tmp);
      this.pendingBytes += gz.length;
      this.newBytes += gz.length;
    })();
    // Awaited by the next closePack or finish; until then a failure must not be an unhandled rejection.
    writing.catch(() => undefined);
    this.packing = writing;
  }

  /** Stores `data` as piece `id` unless the store has it. */
  async put(id: string, data: Buffer, level: number): Promise<void> {
    if (this.has(id)) {
      this.reused++;
      return;
    }
    const tmp = path.join(this.store.dataDir, id.slice(0, 2), `.${id}.${this.suffix}`);
    const options = gzipOptions(data.length, levelFor(data, level));
    const small = data.length <= SMALL_PIECE;
    const gz = small ? zlib.gzipSync(data, options) : await gzip(data, options);
    const packed = this.store.codec ? this.store.codec.seal(gz) : gz;
    // A large piece is deflated and written in the thread pool: the agent's thread hashes the next piece meanwhile.
    if (small) writeWholeSync(tmp, packed);
    else await writeWhole(tmp, packed);
    this.pending.set(id, tmp);
    this.pendingBytes += packed.length;
    this.newBytes += packed.length;
    this.newPieces++;
    await this.syncIfFull();
  }

  /** A full batch of pending pieces goes to be made durable. */
  private async syncIfFull(): Promise<void> {
    if (this.pending.size >= BATCH_PIECES || this.pendingBytes >= BATCH_BYTES) await this.startSync();
  }

  /**
   * Hands the pending batch to a syncfs and its renames, which run while the next batch is
   * written: waiting for the disk stalled the backup for a third of its time (bench item 13). The
   * previous batch is waited for first, so at most two batches are not yet durable.
   */
  private async startSync(): Promise<void> {
    await this.syncDone;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.syncing = batch;
    this.pending = new Map();
    this.pendingBytes = 0;
    const done = this.makeDurable(batch).finally(() => {
      if (this.syncing === batch) this.syncing = new Map();
    });
    // Awaited by the next startSync or finish; until then a failure must not be an unhandled rejection.
    done.catch(() => undefined);
    this.syncDone = done;
  }

  /**
   * A batch's content made durable, then named: a piece under its name is always whole. A few
   * pieces are fsynced one by one: syncfs also flushes whatever else is dirty on that file system.
   */
  private async makeDurable(batch: Map<string, string>): Promise<void> {
    if (batch.size <= FSYNC_EACH) for (const tmp of batch.values()) fsyncFile(tmp);
    else await syncStore(this.store.dir);
    for (const [id, tmp] of batch) {
      renameSync(tmp, this.store.pieceFile(id));
      this.renamedIn.add(id.slice(0, 2));
    }
  }

  /** Every piece written is named and durable: the part's record may be written after this. */
  async finish(): Promise<void> {
    await this.closePack();
    await this.packing;
    await this.startSync();
    await this.syncDone;
    this.syncDone = undefined;
    if (this.renamedIn.size <= FSYNC_EACH) for (const ab of this.renamedIn) fsyncFile(path.join(this.store.dataDir, ab));
    else await syncStore(this.store.dir);
    this.renamedIn.clear();
  }

  /**
   * A failed part's temp pieces go; pieces already named stay for the next backup (or a prune).
   * A batch being made durable is left to finish its renames: its pieces are whole once named.
   */
  abort(): void {
    this.aborted = true;
    this.pack = undefined;
    for (const tmp of this.pending.values()) rmSync(tmp, { force: true });
    this.pending.clear();
  }
}

/**
 * One write call where it can (fs.writeFile writes in 512 KiB steps, a round trip each). A temp
 * file whose write failed goes at once: on a full disk it is what fills it, and the part's
 * record and the manifest still need their few KiB.
 */
async function writeWhole(file: string, data: Buffer): Promise<void> {
  const fh = await fsp.open(file, 'w', FILE_MODE);
  try {
    for (let at = 0; at < data.length; ) at += (await fh.write(data, at, data.length - at)).bytesWritten;
  } catch (err) {
    await fh.close().catch(() => undefined);
    rmSync(file, { force: true });
    throw err;
  }
  await fh.close();
}

function writeWholeSync(file: string, data: Buffer): void {
  const fd = openSync(file, 'w', FILE_MODE);
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at);
  } catch (err) {
    closeSync(fd);
    rmSync(file, { force: true });
    throw err;
  }
  closeSync(fd);
}

/**
 * syncfs of the store's file system (NFS included): one call makes a whole batch durable, where
 * an fsync per small piece would cost a disk flush each. coreutils' `sync -f` is the syncfs(2)
 * call; Node has none.
 */
function fsyncFile(file: string): void {
  const fd = openSync(file, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function syncStore(dir: string): Promise<void> {
  await run(['sync', '-f', dir]);
}

/** The store files a file line's data is in: its pack (FORMAT.md "Packs"), or its pieces. */
export const storeFilesOf = (e: { pieces?: string[]; pack?: string }): string[] => (e.pack !== undefined ? [packName(e.pack)] : (e.pieces ?? []));

/** For a test or a repair: every piece and pack file in data/ (their names), walked directory by directory. */
export function* storedFiles(store: Store): Generator<string> {
  let dirs: string[];
  try {
    dirs = readdirSync(store.dataDir);
  } catch {
    return;
  }
  for (const ab of dirs.sort()) {
    for (const name of readdirSync(path.join(store.dataDir, ab)).sort()) if (STORE_NAME.test(name)) yield name;
  }
}
