import { closeSync, promises as fsp, lstatSync, openSync, readSync, readdirSync, readlinkSync, type BigIntStats } from 'node:fs';
import path from 'node:path';
import { mayBeSparse } from './sparse.js';
import { readTreeXattrs, type Xattrs } from './xattrs.js';

/*
 * The walk every tree writer makes (FORMAT.md: entries in this order): depth first, names sorted
 * as JavaScript sorts strings, each root in the order given.
 */

/** Files up to this size are read whole as the walk finds them, several at once; larger ones stream. */
export const SMALL = 256 * 1024;

/** A file read whole by the walk: small, dense, and not one of several links. */
export const isSmall = (st: BigIntStats): boolean => st.isFile() && st.size <= BigInt(SMALL) && !mayBeSparse(st) && st.nlink === 1n;

export interface Found {
  abs: string;
  st: BigIntStats;
  /** A small file's content, or a symlink's target: read as the walk finds it. */
  data?: Buffer | string;
}

/** Reads a small file whole; one that grew since its lstat is read to its end. */
export function readSmall(abs: string, size: number): Buffer {
  const fd = openSync(abs, 'r');
  try {
    let buf = Buffer.allocUnsafe(size + 1);
    let got = 0;
    for (;;) {
      if (got === buf.length) buf = Buffer.concat([buf, Buffer.allocUnsafe(buf.length)]);
      const n = readSync(fd, buf, got, buf.length - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * Depth first, names sorted (as the entries file lists them); `readFiles` false leaves small files unread (format 3 reads only what changed). Synchronous calls: per small file
 * they cost a third of the CPU of their promise forms (common/parallel.ts timeSlicer, which the
 * caller uses to give the event loop its turns). Large files are only lstat'ed here and stream later.
 */
export function* walkTree(abs: string, st: BigIntStats, exclude?: (p: string) => boolean, readFiles = true): Generator<Found> {
  let data: Buffer | string | undefined;
  if (st.isSymbolicLink()) data = readlinkSync(abs);
  else if (readFiles && isSmall(st)) data = readSmall(abs, Number(st.size));
  yield { abs, st, data };
  if (!st.isDirectory()) return;
  for (const name of readdirSync(abs).sort()) {
    const child = path.join(abs, name);
    if (exclude?.(child)) continue;
    yield* walkTree(child, lstatSync(child, { bigint: true }), exclude, readFiles);
  }
}


/**
 * Every root of a tree writer's sources in turn, walked, each found path with its extended
 * attributes (read once per root). A root that is absent is an optional path (advanced.config,
 * ...) and is passed over; a missing getfattr is reported once.
 */
export async function* walkSources(sources: string[], opts: { exclude?: (p: string) => boolean; readFiles: boolean; report?: (line: string) => void }): AsyncGenerator<Found & { xattrs?: Xattrs }> {
  let toldNoGetfattr = false;
  for (const src of sources) {
    if (opts.exclude?.(src)) continue;
    let st: BigIntStats;
    try {
      st = await fsp.lstat(src, { bigint: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const read = await readTreeXattrs(src);
    if (!read && !toldNoGetfattr) opts.report?.('getfattr not found (install the Debian package attr): extended attributes and ACLs are not recorded');
    toldNoGetfattr ||= !read;
    for (const f of walkTree(src, st, opts.exclude, opts.readFiles)) yield read?.has(f.abs) ? { ...f, xattrs: read.get(f.abs) } : f;
  }
}
