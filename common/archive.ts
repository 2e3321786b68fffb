import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { ZipArchive } from 'archiver';
import unzipper from 'unzipper';
import './native-crc32.js';
import { forEachBounded } from './parallel.js';
import type { Artifact, Entry } from './manifest.js';
import { HashingStream } from './hash.js';
import { FILE_MODE, fsyncPath } from './fsutil.js';
import { IntegrityError, LsbackupError } from './errors.js';
import { shown } from './quote.js';
import { DataExtentScanner, SparseFileWriter, mayBeSparse, type Extent } from './sparse.js';
import { readTreeXattrs, type Xattrs } from './xattrs.js';

export interface ZipOptions {
  /** 0 stores entries as they are (data that is already compressed); 1-9 deflate. */
  level: number;
  /** Paths (absolute) to leave out, e.g. Grafana's png/ renders. */
  exclude?: (absPath: string) => boolean;
  onBytes?: (n: number) => void;
  signal?: AbortSignal;
  /** One line for the part's progress (what could not be recorded). */
  report?: (line: string) => void;
}

/** zlib's default 16 KiB output chunks cost a thread-pool round trip and a stream hop each. */
const ZLIB_CHUNK = 256 * 1024;

/** Read, write and stream buffer size: at 1 MiB the per-chunk costs (syscalls, stream hops) no longer show. */
const STREAM_CHUNK = 1 << 20;

/** Files smaller than the sample are deflated without a look: a look would cost about as much. */
const SAMPLE_BYTES = 64 * 1024;
/** A sample that deflate shrinks by less than this share is stored, not deflated (see FORMAT.md). */
const MIN_SAVING = 0.1;

/**
 * Whether a file is already compressed, judged by deflating its first 64 KiB at level 1 (as borg's
 * `auto` compression does with a fast test compressor). Deflate at level 6 spends ~20 s per GiB
 * of random data to save nothing; storing it costs only the copy.
 */
async function looksIncompressible(file: string, size: number): Promise<boolean> {
  if (size < SAMPLE_BYTES) return false;
  const fh = await fsp.open(file, 'r');
  try {
    const sample = Buffer.allocUnsafe(SAMPLE_BYTES);
    const { bytesRead } = await fh.read(sample, 0, SAMPLE_BYTES, 0);
    const packed = zlib.deflateRawSync(sample.subarray(0, bytesRead), { level: 1 });
    return packed.length > bytesRead * (1 - MIN_SAVING);
  } finally {
    await fh.close();
  }
}

/**
 * A file's bytes as they are read, and, for a file that may have holes, the extents that hold
 * data once it has been read through (undefined for a dense file, or one with no hole after all).
 */
function fileSource(abs: string, st: { size: bigint; blocks: bigint; blksize: bigint }): { stream: Readable; extents: () => Extent[] | undefined } {
  const size = Number(st.size);
  // A read stream allocates a whole highWaterMark per read, even for a file of a few bytes.
  const source = createReadStream(abs, { highWaterMark: Math.min(STREAM_CHUNK, Math.max(64 * 1024, size + 1)) });
  if (!mayBeSparse(st)) return { stream: source, extents: () => undefined };
  const scanner = new DataExtentScanner(Number(st.blksize) || 4096);
  source.on('error', (err) => scanner.destroy(err));
  const extents = () => {
    const found = scanner.extents();
    return found.length === 1 && found[0]![0] === 0 && found[0]![1] === size ? undefined : found;
  };
  return { stream: source.pipe(scanner), extents };
}

/** Entry name for an absolute source path: the path without its leading slash. */
export function entryNameOf(absPath: string): string {
  return absPath.replace(/^\/+/, '');
}

/**
 * Zips the given absolute paths (files or directory trees) into `outFile`, recording every
 * file's hash and metadata as it streams through, so nothing is read twice.
 * `artifactPath` is the artifact's path relative to the set, as the manifest names it.
 */
export async function writeZip(
  outFile: string,
  artifactPath: string,
  sources: string[],
  opts: ZipOptions,
): Promise<{ artifact: Artifact; entries: Entry[] }> {
  const archive = new ZipArchive({ zlib: { level: opts.level, chunkSize: ZLIB_CHUNK }, store: opts.level === 0, highWaterMark: STREAM_CHUNK } as never);
  const out = createWriteStream(outFile, { mode: FILE_MODE, highWaterMark: STREAM_CHUNK });
  const outHash = new HashingStream();
  const entries: Entry[] = [];
  // Files seen with more than one link, by device and inode: the others are recorded as links to the first.
  const firstOfInode = new Map<string, Entry>();
  let xattrs = new Map<string, Xattrs>();
  let toldNoGetfattr = false;
  let failure: Error | undefined;
  // archiver reports unreadable or vanished files as warnings; a backup missing a file is a failed backup.
  archive.on('warning', (err: Error) => (failure ??= err));
  archive.on('error', (err: Error) => (failure ??= err));
  const written = pipeline(archive, outHash, out);
  written.catch((err: Error) => (failure ??= err));
  // Files are appended one at a time, each once archiver has taken in the one before,
  // so a tree of thousands of files never holds thousands of open descriptors.
  let appended = 0;
  let processed = 0;
  let wake: (() => void) | undefined;
  archive.on('entry', () => {
    processed++;
    wake?.();
  });
  const settled = written.then(() => undefined, () => undefined);
  // A cancelled backup stops now, not after the file being read (which may be gigabytes).
  let current: NodeJS.ReadableStream & { destroy(err?: Error): void } | undefined;
  const onAbort = () => {
    failure ??= new LsbackupError('backup cancelled');
    current?.destroy(failure);
    wake?.();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const caughtUp = async (): Promise<void> => {
    while (processed < appended && !failure) {
      await Promise.race([new Promise<void>((r) => (wake = r)), settled]);
    }
  };

  const add = async (abs: string): Promise<void> => {
    if (opts.exclude?.(abs)) return;
    if (opts.signal?.aborted) throw new LsbackupError('backup cancelled');
    const st = await fsp.lstat(abs, { bigint: true });
    const base = {
      archive: artifactPath,
      name: entryNameOf(abs),
      path: abs,
      mode: Number(st.mode),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs.toString(),
      linkTarget: '',
      sha256: '',
      size: 0,
      ...(xattrs.has(abs) ? { xattrs: xattrs.get(abs) } : {}),
    };
    const date = new Date(Number(st.mtimeMs));
    if (st.isSymbolicLink()) {
      const target = await fsp.readlink(abs);
      entries.push({ ...base, type: 'symlink', linkTarget: target });
      appended++;
      archive.symlink(base.name, target, Number(st.mode) & 0o7777);
      return;
    }
    if (st.isDirectory()) {
      entries.push({ ...base, type: 'dir' });
      appended++;
      archive.append(Buffer.alloc(0), { name: base.name + '/', type: 'directory', date, mode: Number(st.mode) & 0o7777 });
      const names = (await fsp.readdir(abs)).sort();
      for (const name of names) await add(path.join(abs, name));
      return;
    }
    if (!st.isFile()) return; // sockets, fifos and devices are not configuration
    const inode = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1n ? firstOfInode.get(inode) : undefined;
    if (first) {
      entries.push({ ...base, type: 'file', size: first.size, sha256: first.sha256, linkOf: first.path });
      return;
    }
    const store = opts.level === 0 || (await looksIncompressible(abs, Number(st.size)));
    const hashing = new HashingStream(opts.onBytes);
    const { stream: source, extents } = fileSource(abs, st);
    source.on('error', (err) => hashing.destroy(err));
    // archiver does not listen for errors on the streams it is given; an unread error would crash the agent.
    hashing.on('error', (err) => {
      failure ??= err;
      wake?.();
    });
    current = source;
    appended++;
    archive.append(source.pipe(hashing), { name: base.name, date, mode: Number(st.mode) & 0o7777, store });
    await caughtUp();
    if (failure) throw failure;
    const dataExtents = extents();
    const entry: Entry = { ...base, type: 'file', size: hashing.bytes, sha256: hashing.digest(), ...(dataExtents ? { dataExtents } : {}) };
    entries.push(entry);
    if (st.nlink > 1n) firstOfInode.set(inode, entry);
  };

  try {
    for (const src of sources) {
      try {
        await fsp.lstat(src);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // optional paths (advanced.config, ...) may be absent
        throw err;
      }
      const read = await readTreeXattrs(src);
      if (!read && !toldNoGetfattr) opts.report?.('getfattr not found (install the Debian package attr): extended attributes and ACLs are not recorded');
      toldNoGetfattr ||= !read;
      xattrs = read ?? new Map();
      await add(src);
      if (failure) throw failure;
    }
    await archive.finalize();
    // finalize() resolves when archiver is done, not when the bytes are on disk.
    await written;
    if (failure) throw failure;
    await fsyncPath(outFile);
    await fsyncPath(path.dirname(outFile));
  } catch (err) {
    archive.abort();
    out.destroy();
    await fsp.rm(outFile, { force: true });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  await fsp.chmod(outFile, FILE_MODE);
  return {
    artifact: { path: artifactPath, kind: 'zip', size: outHash.bytes, sha256: outHash.digest(), mode: 0o100600 },
    entries,
  };
}

const LOCAL_HEADER = 0x04034b50;

/** Entries whose bytes are in the zip: files, but not the second and later names of a hard-linked file. */
export const hasData = (e: Entry): boolean => e.type === 'file' && !e.linkOf;

/** Entries extracted at once. */
const EXTRACT_PARALLEL = Math.min(4, Math.max(2, os.availableParallelism()));

/**
 * An entry's uncompressed bytes, read straight from the archive: the local header gives where the
 * data starts (its name and extra lengths may differ from the central directory's), the central
 * directory gives the compressed size. unzipper's own entry stream inflates with zlib's default
 * 16 KiB chunks through three more stream hops, which costs more than the inflating itself.
 */
async function entryData(zipFile: string, f: unzipper.File): Promise<Readable> {
  if (f.flags & 0x1) throw new IntegrityError(`archive ${path.basename(zipFile)}: entry '${f.path}' is encrypted`);
  if (f.compressionMethod !== 0 && f.compressionMethod !== 8) {
    throw new IntegrityError(`archive ${path.basename(zipFile)}: entry '${f.path}' uses compression method ${f.compressionMethod}`);
  }
  const header = Buffer.alloc(30);
  const fh = await fsp.open(zipFile, 'r');
  try {
    const { bytesRead } = await fh.read(header, 0, 30, f.offsetToLocalFileHeader);
    if (bytesRead !== 30 || header.readUInt32LE(0) !== LOCAL_HEADER) {
      throw new IntegrityError(`archive ${path.basename(zipFile)}: no local header for '${f.path}' at offset ${f.offsetToLocalFileHeader}`);
    }
  } finally {
    await fh.close();
  }
  const start = f.offsetToLocalFileHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  const raw = f.compressedSize === 0 ? Readable.from([]) : createReadStream(zipFile, { start, end: start + f.compressedSize - 1, highWaterMark: STREAM_CHUNK });
  if (f.compressionMethod === 0) return raw;
  const inflate = zlib.createInflateRaw({ chunkSize: ZLIB_CHUNK });
  // Errors either way end both: a bad archive must not leave its descriptor open.
  raw.on('error', (err: Error) => inflate.destroy(err));
  inflate.on('error', () => raw.destroy());
  return raw.pipe(inflate);
}

/**
 * Streams every file entry of `zipFile` that the manifest lists to `destFor(entry)` (skipped where
 * that gives undefined), checking size and SHA-256 against the manifest entry. The zip's central
 * directory is read (unzipper's Open), because archiver writes data descriptors that streaming
 * parsers misread; each entry's data is then inflated straight from its offset (see entryData).
 * Any zip entry the manifest does not list is refused before anything is written.
 */
export async function extractVerified(
  zipFile: string,
  entries: Entry[],
  destFor: (e: Entry) => string | undefined,
  onBytes?: (n: number) => void,
): Promise<void> {
  const dir = await unzipper.Open.file(zipFile);
  const byName = new Map<string, Entry>();
  for (const e of entries) byName.set(e.type === 'dir' ? e.name + '/' : e.name, e);
  for (const f of dir.files) {
    if (!byName.has(f.path)) throw new IntegrityError(`archive ${path.basename(zipFile)} holds '${shown(f.path)}', which its manifest does not list; refusing to restore`);
  }
  const zipByName = new Map(dir.files.map((f) => [f.path, f]));
  const jobs = entries
    .filter(hasData)
    .map((e) => {
      const f = zipByName.get(e.name);
      if (!f) throw new IntegrityError(`archive ${path.basename(zipFile)} is missing ${e.path}`);
      return { e, f };
    });
  const one = async ({ e, f }: { e: Entry; f: unzipper.File }): Promise<void> => {
    const dest = destFor(e);
    if (!dest) return;
    const hashing = new HashingStream(onBytes);
    const out = e.dataExtents ? new SparseFileWriter(dest, e.dataExtents, e.size, FILE_MODE) : createWriteStream(dest, { mode: FILE_MODE, highWaterMark: STREAM_CHUNK });
    await pipeline(await entryData(zipFile, f), hashing, out);
    const sha = hashing.digest();
    if (hashing.bytes !== e.size || sha !== e.sha256) {
      await fsp.rm(dest, { force: true });
      throw new IntegrityError(`${e.path}: extracted ${hashing.bytes} bytes with sha256 ${sha.slice(0, 12)}…, manifest says ${e.size} bytes ${e.sha256.slice(0, 12)}…`);
    }
  };
  // Entries are independent: inflating several at once puts every core to work, as tar | gzip does.
  await forEachBounded(jobs, EXTRACT_PARALLEL, one);
}

/**
 * Reads every file entry of `zipFile` and checks it against its manifest entry without writing
 * anything: what `verify` does so that a wrong entry is found before a restore needs it. Returns
 * one line per problem (an entry the manifest does not list, one it lists that is missing, a size
 * or SHA-256 that differs), named by the artifact's path in the set.
 */
export async function checkArchive(zipFile: string, artifactPath: string, entries: Entry[], onBytes?: (n: number) => void): Promise<string[]> {
  const problems: string[] = [];
  let dir: unzipper.CentralDirectory;
  try {
    dir = await unzipper.Open.file(zipFile);
  } catch (err) {
    return [`${artifactPath}: not a readable zip: ${(err as Error).message}`];
  }
  const listed = new Set(entries.map((e) => (e.type === 'dir' ? e.name + '/' : e.name)));
  for (const f of dir.files) if (!listed.has(f.path)) problems.push(`${artifactPath}: holds '${shown(f.path)}', which the manifest does not list`);
  const zipByName = new Map(dir.files.map((f) => [f.path, f]));
  const one = async (e: Entry): Promise<void> => {
    const f = zipByName.get(e.name);
    if (!f) {
      problems.push(`${artifactPath}: ${e.path} is missing from the archive`);
      return;
    }
    const hashing = new HashingStream(onBytes);
    try {
      await pipeline(await entryData(zipFile, f), hashing, new Writable({ write: (_c, _e, cb) => cb() }));
    } catch (err) {
      problems.push(`${artifactPath}: ${e.path}: ${(err as Error).message}`);
      return;
    }
    const sha = hashing.digest();
    if (hashing.bytes !== e.size) problems.push(`${artifactPath}: ${e.path}: ${hashing.bytes} bytes, manifest says ${e.size}`);
    else if (sha !== e.sha256) problems.push(`${artifactPath}: ${e.path}: sha256 mismatch`);
  };
  await forEachBounded(entries.filter(hasData), EXTRACT_PARALLEL, one);
  return problems;
}
