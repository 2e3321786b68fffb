/*
 * Zip trees of format 1 (FORMAT.md): read, verified and restored; no longer written (format 2
 * writes tar trees, common/tar-tree.ts).
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import unzipper from 'unzipper';
import { forEachBounded } from './parallel.js';
import type { Entry } from './manifest.js';
import { HashingStream } from './hash.js';
import { FILE_MODE } from './fsutil.js';
import { IntegrityError } from './errors.js';
import { shown } from './quote.js';
import { SparseFileWriter } from './sparse.js';

/** zlib's default 16 KiB output chunks cost a thread-pool round trip and a stream hop each. */
const ZLIB_CHUNK = 256 * 1024;

/** Read, write and stream buffer size: at 1 MiB the per-chunk costs (syscalls, stream hops) no longer show. */
const STREAM_CHUNK = 1 << 20;

/** Entry name for an absolute source path: the path without its leading slash. */
export function entryNameOf(absPath: string): string {
  return absPath.replace(/^\/+/, '');
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
