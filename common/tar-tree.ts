import { createReadStream, createWriteStream, promises as fsp, writeFileSync } from 'node:fs';
import { SMALL, walkSources, type Found } from './tree-walk.js';
import { timeSlicer } from './parallel.js';
import path from 'node:path';
import { Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { TarArchive } from 'archiver';
import tar from 'tar-stream';
import type { Artifact, Entry } from './manifest.js';
import { HashingStream } from './hash.js';
import { FILE_MODE, fsyncPath } from './fsutil.js';
import { IntegrityError, LsbackupError } from './errors.js';
import { shown } from './quote.js';
import { entryNameOf } from './archive.js';
import { DataExtentScanner, SparseFileWriter, mayBeSparse } from './sparse.js';
import type { Xattrs } from './xattrs.js';
import type { EntriesWriter } from './entries-file.js';

/*
 * Trees of files as `tar` artifacts (FORMAT.md "Format 2"): archiver's tar mode writes them, one
 * gzip stream compresses them, tar-stream reads them back in one pass beside the entries file.
 */

export interface TreeOptions {
  /** 0: a plain tar (data that is already compressed); 1-9: gzip at that level. */
  level: number;
  /** Paths (absolute) to leave out, e.g. Grafana's png/ renders. */
  exclude?: (absPath: string) => boolean;
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  /** One line for the part's progress (what could not be recorded). */
  report?: (line: string) => void;
  /** Where each entry goes, in archive order. */
  entries: EntriesWriter;
}

/** The file name of a tree artifact: `.tar.gz`, or `.tar` when nothing is compressed. */
export const treeFileName = (base: string, level: number): string => `${base}${level === 0 ? '.tar' : '.tar.gz'}`;

/** What archiver may hold that it has not yet written: appends wait beyond either. */
const QUEUED_ENTRIES = 512;
const QUEUED_BYTES = 32 << 20;
const CHUNK = 1 << 20;

/**
 * Gathers small writes into 1 MiB chunks. Each tar header and small file would otherwise be its
 * own zlib call and stream hop, which cost more than the compression (measured: 6.9 s for
 * 40,000 small files, 1.8 s with this).
 */
class Coalesce extends Transform {
  private parts: Buffer[] = [];
  private length = 0;
  constructor() {
    super({ highWaterMark: CHUNK });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.length += chunk.length;
    if (this.length >= CHUNK) this.release();
    cb();
  }
  override _flush(cb: TransformCallback): void {
    if (this.length) this.release();
    cb();
  }
  private release(): void {
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length));
    this.parts = [];
    this.length = 0;
  }
}

/**
 * Two gaps between archiver 8 and the tar-stream 3 it drives, both of which killed the agent:
 * - archiver pipes a streamed file into the tar-stream entry it makes, and nobody listens for that
 *   entry's errors: when the output fails (ENOSPC) the pack destroys the entry and the error is
 *   emitted on it. The failure reaches us through archiver's 'error' and the output pipeline;
 *   the entry's copy is dropped here.
 * - an archive aborted (a cancelled backup, a lost coordinator) while a file streams shuts down by
 *   calling `unpipe` on the pack, which tar-stream 3 (streamx) does not have: a TypeError thrown
 *   from a stream callback. The archive is abandoned at that point, so there is nothing to unpipe.
 * archiver's Tar module keeps the pack as `engine`; checked, so a changed archiver fails the test
 * suite, not a backup at 3 a.m.
 */
function patchTarEngine(archive: TarArchive): void {
  const engine = (archive as unknown as { _module?: { engine?: { entry?: (...args: unknown[]) => NodeJS.EventEmitter; unpipe?: unknown } } })._module?.engine;
  if (typeof engine?.entry !== 'function') throw new LsbackupError('archiver has changed: its tar module has no engine.entry');
  const entry = engine.entry.bind(engine);
  engine.entry = (...args: unknown[]) => entry(...args).on('error', () => undefined);
  engine.unpipe ??= () => engine;
}

/**
 * Archives the given absolute paths (files or directory trees) into `outFile`, hashing every file
 * as it streams through and handing its entry to `opts.entries` in archive order, so nothing is
 * read twice and nothing of the tree is held in memory.
 */
export async function writeTree(outFile: string, artifactPath: string, sources: string[], opts: TreeOptions): Promise<Artifact> {
  const archive = new TarArchive({ highWaterMark: CHUNK } as never);
  patchTarEngine(archive);
  const out = createWriteStream(outFile, { mode: FILE_MODE, highWaterMark: CHUNK });
  const outHash = new HashingStream();
  // Files seen with more than one link, by device and inode: the others are recorded as links to the first.
  const firstOfInode = new Map<string, Entry>();
  let failure: Error | undefined;
  // archiver reports unreadable or vanished files as warnings; a backup missing a file is a failed backup.
  archive.on('warning', (err: Error) => (failure ??= err));
  archive.on('error', (err: Error) => (failure ??= err));
  const stages: NodeJS.ReadWriteStream[] = [new Coalesce()];
  if (opts.level > 0) stages.push(zlib.createGzip({ level: opts.level, chunkSize: 256 * 1024 }));
  const written = pipeline([archive, ...stages, outHash, out] as never) as Promise<void>;
  written.catch((err: Error) => (failure ??= err));
  const settled = written.then(() => undefined, () => undefined);
  // What archiver holds, not yet written: bounded, so memory stays flat whatever the tree.
  const queuedSizes: number[] = [];
  let queuedBytes = 0;
  let wake: (() => void) | undefined;
  archive.on('entry', () => {
    queuedBytes -= queuedSizes.shift() ?? 0;
    wake?.();
  });
  let current: (NodeJS.ReadableStream & { destroy(err?: Error): void }) | undefined;
  const onAbort = () => {
    failure ??= new LsbackupError('backup cancelled');
    current?.destroy(failure);
    wake?.();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const waitWhile = async (busy: () => boolean): Promise<void> => {
    while (busy() && !failure) await Promise.race([new Promise<void>((r) => (wake = r)), settled]);
  };
  const queue = async (size: number): Promise<void> => {
    queuedSizes.push(size);
    queuedBytes += size;
    await waitWhile(() => queuedSizes.length > QUEUED_ENTRIES || queuedBytes > QUEUED_BYTES);
  };

  const add = async ({ abs, st, data: small, xattrs }: Found & { xattrs?: Xattrs }): Promise<void> => {
    if (opts.signal?.aborted) throw new LsbackupError('backup cancelled');
    const name = entryNameOf(abs);
    const base = {
      archive: artifactPath,
      name,
      path: abs,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs.toString(),
      linkTarget: '',
      sha256: '',
      size: 0,
      ...(xattrs ? { xattrs } : {}),
    };
    const date = new Date(Number(st.mtimeMs));
    const mode = Number(st.mode) & 0o7777;
    if (st.isSymbolicLink()) {
      const target = small as string;
      await opts.entries.add({ ...base, type: 'symlink', linkTarget: target });
      archive.symlink(name, target, mode);
      return queue(0);
    }
    if (st.isDirectory()) {
      await opts.entries.add({ ...base, type: 'dir' });
      archive.append(Buffer.alloc(0), { name: name + '/', type: 'directory', date, mode });
      return queue(0);
    }
    if (!st.isFile()) return; // sockets, fifos and devices are not configuration
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1n ? firstOfInode.get(inode) : undefined;
    if (first) {
      await opts.entries.add({ ...base, type: 'file', size: first.size, sha256: first.sha256, linkOf: first.path });
      return;
    }
    let entry: Entry;
    if (small !== undefined) {
      const data = small as Buffer;
      opts.onBytes?.(data.length);
      entry = { ...base, type: 'file', size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
      archive.append(data, { name, date, mode });
      await queue(data.length);
    } else {
      const hashing = new HashingStream(opts.onBytes);
      const size = Number(st.size);
      // A tar header holds the size before the data: what lstat said is archived (as GNU tar does
      // with a file that grows while it is read); a file that shrank fails the part.
      const source = size === 0 ? Readable.from([]) : createReadStream(abs, { end: size - 1, highWaterMark: Math.min(CHUNK, Math.max(64 * 1024, size + 1)) });
      const scanner = mayBeSparse(st) ? new DataExtentScanner(Number(st.blksize) || 4096) : undefined;
      source.on('error', (err: Error) => (scanner ?? hashing).destroy(err));
      scanner?.on('error', (err) => hashing.destroy(err));
      // archiver does not listen for errors on the streams it is given; an unread error would crash the agent.
      hashing.on('error', (err) => {
        failure ??= err;
        wake?.();
      });
      current = source;
      // With its size given, archiver streams the file into the tar; without, it would gather all of it in memory first.
      archive.append((scanner ? source.pipe(scanner) : source).pipe(hashing), { name, date, mode, stats: { size } as never });
      // A stream's size is known only once it is read: it must be archived before the next entry starts.
      await queue(0);
      await waitWhile(() => queuedSizes.length > 0);
      if (failure) throw failure;
      const found = scanner?.extents();
      const dataExtents = found && !(found.length === 1 && found[0]![0] === 0 && found[0]![1] === hashing.bytes) ? found : undefined;
      entry = { ...base, type: 'file', size: hashing.bytes, sha256: hashing.digest(), ...(dataExtents ? { dataExtents } : {}) };
    }
    await opts.entries.add(entry);
    if (st.nlink > 1n) firstOfInode.set(inode, entry);
  };

  try {
    const breathe = timeSlicer();
    for await (const f of walkSources(sources, { exclude: opts.exclude, readFiles: true, report: opts.report })) {
      await add(f);
      if (failure) throw failure;
      await breathe();
    }
    await archive.finalize();
    // finalize() resolves when archiver is done, not when the bytes are on disk.
    await written;
    if (failure) throw failure;
    await fsyncPath(outFile);
  } catch (err) {
    archive.abort();
    out.destroy();
    await fsp.rm(outFile, { force: true });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  await fsp.chmod(outFile, FILE_MODE);
  return { path: artifactPath, kind: 'tar', size: outHash.bytes, sha256: outHash.digest(), mode: 0o100600 };
}

/** Entries a tar holds, in its order: all but the second and later names of a hard-linked file. */
export const inTar = (e: Entry): boolean => !(e.type === 'file' && e.linkOf);

const typeOfHeader = (t: string | null | undefined): Entry['type'] | undefined => (t === 'file' || t === 'contiguous-file' ? 'file' : t === 'directory' ? 'dir' : t === 'symlink' ? 'symlink' : undefined);

/** Every entry of a tar artifact, in order, as tar-stream reads it; gunzipped when its name says so. */
function tarEntries(file: string): tar.Extract {
  const extract = tar.extract();
  const source = createReadStream(file, { highWaterMark: CHUNK });
  const stages: NodeJS.ReadWriteStream[] = file.endsWith('.gz') ? [zlib.createGunzip({ chunkSize: 256 * 1024 })] : [];
  pipeline([source, ...stages, extract] as never).catch((err: Error) => extract.destroy(err));
  return extract;
}

/** Where a tar and its entries part ways: the tar holds `name` where the entries list `listed` (undefined: nothing more), or misses `missing`. */
class TreeMismatch extends Error {
  constructor(
    readonly entryName: string,
    readonly listed: string | undefined,
    readonly missing?: string,
  ) {
    super('tar and entries differ');
  }
  holds(): string {
    return `holds '${shown(this.entryName)}' where its entries list ${this.listed !== undefined ? `'${shown(this.listed)}'` : 'nothing more'}`;
  }
}

/**
 * A tar's entries beside the entries file's, in one pass: each tar entry with the entry it must
 * be (same name and type), skipping hard links (they have no tar entry). Throws TreeMismatch
 * where the two part ways, or when the tar ends before the entries do.
 */
async function* pairedEntries(extract: tar.Extract, entries: Iterable<Entry> | AsyncIterable<Entry>): AsyncGenerator<{ te: AsyncIterable<Buffer> & { header: tar.Header; resume(): unknown }; e: Entry }> {
  const expected = (async function* () {
    for await (const e of entries) if (inTar(e)) yield e;
  })();
  for await (const te of extract) {
    const name = te.header.name.replace(/\/+$/, '');
    const next = await expected.next();
    const e = next.done ? undefined : next.value;
    if (!e || e.name !== name || e.type !== typeOfHeader(te.header.type)) throw new TreeMismatch(name, e?.name);
    yield { te: te as unknown as AsyncIterable<Buffer> & { header: tar.Header; resume(): unknown }, e };
  }
  const left = await expected.next();
  if (!left.done) throw new TreeMismatch('', undefined, left.value.path);
}

/** Reads a tar entry's data whole: small files are written in one call, several at once. */
async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Streams every file of a tar artifact to `destFor(entry)` (skipped where that gives undefined),
 * in one pass beside `entries` (that archive's, in order), checking each one's name and type, and
 * each file's size and SHA-256, against its entry. An entry the tar holds that is not next in
 * `entries`, or one missing, refuses the restore; a file that differs is removed and refuses it.
 */
export async function extractTree(file: string, entries: Iterable<Entry> | AsyncIterable<Entry>, destFor: (e: Entry) => string | undefined, onBytes?: (n: number) => void): Promise<void> {
  const archive = path.basename(file);
  const breathe = timeSlicer();
  const check = async (e: Entry, dest: string, bytes: number, sha: string) => {
    if (bytes !== e.size || sha !== e.sha256) {
      await fsp.rm(dest, { force: true });
      throw new IntegrityError(`${e.path}: extracted ${bytes} bytes with sha256 ${sha.slice(0, 12)}…, its entry says ${e.size} bytes ${e.sha256.slice(0, 12)}…`);
    }
  };
  const extract = tarEntries(file);
  try {
    for await (const { te, e } of pairedEntries(extract, entries)) {
      const dest = e.type === 'file' ? destFor(e) : undefined;
      if (!dest) {
        te.resume();
        continue;
      }
      if (e.size <= SMALL && !e.dataExtents) {
        const data = await readAll(te as unknown as Readable);
        onBytes?.(data.length);
        await check(e, dest, data.length, createHash('sha256').update(data).digest('hex'));
        // Written in one synchronous call: for a file of a few KiB, a third of the CPU of the promise forms (timeSlicer).
        writeFileSync(dest, data, { mode: FILE_MODE });
        await breathe();
        continue;
      }
      const hashing = new HashingStream(onBytes);
      const out: Writable = e.dataExtents ? new SparseFileWriter(dest, e.dataExtents, e.size, FILE_MODE) : createWriteStream(dest, { mode: FILE_MODE, highWaterMark: CHUNK });
      await pipeline(te, hashing, out);
      await check(e, dest, hashing.bytes, hashing.digest());
    }
  } catch (err) {
    if (!(err instanceof TreeMismatch)) throw err;
    throw new IntegrityError(err.missing !== undefined ? `archive ${archive} is missing ${err.missing}` : `archive ${archive} ${err.holds()}; refusing to restore`);
  } finally {
    extract.destroy();
  }
}

/**
 * Reads every entry of a tar artifact beside its entries, writing nothing: what `verify` does, in
 * one pass and flat memory. One line per problem, named by the artifact's path in the set; after
 * a tar and its entries part ways, the rest of that archive is not compared.
 */
export async function checkTree(file: string, artifactPath: string, entries: AsyncIterable<Entry>, onBytes?: (n: number) => void): Promise<string[]> {
  const problems: string[] = [];
  const extract = tarEntries(file);
  try {
    for await (const { te, e } of pairedEntries(extract, entries)) {
      if (e.type !== 'file') {
        te.resume();
        continue;
      }
      const hash = createHash('sha256');
      let bytes = 0;
      for await (const c of te) {
        hash.update(c as Buffer);
        bytes += (c as Buffer).length;
        onBytes?.((c as Buffer).length);
      }
      if (bytes !== e.size) problems.push(`${artifactPath}: ${e.path}: ${bytes} bytes, its entry says ${e.size}`);
      else if (hash.digest('hex') !== e.sha256) problems.push(`${artifactPath}: ${e.path}: sha256 mismatch`);
    }
  } catch (err) {
    if (err instanceof TreeMismatch) problems.push(err.missing !== undefined ? `${artifactPath}: ${err.missing} is missing from the archive` : `${artifactPath}: ${err.holds()}`);
    else problems.push(err instanceof IntegrityError ? err.message : `${artifactPath}: not a readable tar: ${(err as Error).message}`);
  } finally {
    extract.destroy();
  }
  return problems;
}
