import { promises as fsp } from 'node:fs';
import { Transform, Writable, type TransformCallback } from 'node:stream';

/** [offset, length] of a range of a sparse file that holds data (FORMAT.md, `dataExtents`). */
export type Extent = [number, number];

/**
 * Whether a file may have holes: fewer blocks allocated than its size needs. A dense file (nearly
 * all of them) is never scanned, so this costs nothing but the lstat already made.
 */
export function mayBeSparse(st: { size: bigint; blocks: bigint }): boolean {
  return st.blocks * 512n < st.size;
}

const isZero = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i += ZERO.length) {
    const part = b.subarray(i, Math.min(b.length, i + ZERO.length));
    if (!part.equals(ZERO.subarray(0, part.length))) return false;
  }
  return true;
};
const ZERO = Buffer.alloc(1 << 16);

/**
 * Finds the data extents of a file from its content, chunk after chunk in order: every block of
 * the file system's block size that is all zeros counts as a hole (Node 20 has no
 * SEEK_DATA/SEEK_HOLE). A block that straddles two chunks counts as data; reads of a regular
 * file give whole chunks, so that is only ever the last one.
 */
export class ExtentFinder {
  private position = 0;
  private readonly found: Extent[] = [];
  constructor(private readonly blockSize: number) {}
  add(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) {
      const abs = this.position + at;
      const end = Math.min(chunk.length, at + this.blockSize - (abs % this.blockSize));
      if (!isZero(chunk.subarray(at, end))) this.addData(abs, end - at);
      at = end;
    }
    this.position += chunk.length;
  }
  private addData(offset: number, length: number): void {
    const last = this.found.at(-1);
    if (last && last[0] + last[1] === offset) last[1] += length;
    else this.found.push([offset, length]);
  }
  extents(): Extent[] {
    return this.found;
  }
  /** The extents, unless the file turned out to be all data (then it is not recorded as sparse). */
  sparseExtents(size: number): Extent[] | undefined {
    const f = this.found;
    return f.length === 1 && f[0]![0] === 0 && f[0]![1] === size ? undefined : f;
  }
}

/** ExtentFinder as a pass-through stream, for a file that streams into an archive. */
export class DataExtentScanner extends Transform {
  private readonly finder: ExtentFinder;
  constructor(blockSize: number) {
    super({ highWaterMark: 1 << 20 });
    this.finder = new ExtentFinder(blockSize);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.finder.add(chunk);
    cb(null, chunk);
  }
  extents(): Extent[] {
    return this.finder.extents();
  }
}

/**
 * Writes a sparse file's content, leaving its holes unwritten so they stay unallocated, then
 * truncates it to its size. A byte in a hole that is not zero is written all the same: the file
 * is always exactly the content that was verified, whatever the extents say.
 */
export class SparseFileWriter extends Writable {
  private position = 0;
  private passed = 0;
  private fh: fsp.FileHandle | undefined;
  constructor(
    private readonly file: string,
    private readonly extents: Extent[],
    private readonly size: number,
    private readonly mode: number,
  ) {
    super({ highWaterMark: 1 << 20 });
  }
  override _construct(cb: (err?: Error | null) => void): void {
    fsp.open(this.file, 'w', this.mode).then((fh) => ((this.fh = fh), cb()), cb);
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => cb(), cb);
  }
  private async writeChunk(chunk: Buffer): Promise<void> {
    const start = this.position;
    this.position += chunk.length;
    for (const [from, to, inData] of this.pieces(start, start + chunk.length)) {
      const piece = chunk.subarray(from - start, to - start);
      if (inData || !isZero(piece)) await this.fh!.write(piece, 0, piece.length, from);
    }
  }
  /** [start, end) cut at the extents' edges: [from, to, whether it is inside an extent]. */
  private pieces(start: number, end: number): [number, number, boolean][] {
    const out: [number, number, boolean][] = [];
    let at = start;
    // Chunks come in order: extents that ended before this one never matter again.
    while (this.passed < this.extents.length && this.extents[this.passed]![0] + this.extents[this.passed]![1] <= start) this.passed++;
    for (let i = this.passed; i < this.extents.length; i++) {
      const [offset, length] = this.extents[i]!;
      if (offset >= end) break;
      if (offset > at) out.push([at, offset, false]);
      at = Math.min(end, offset + length);
      out.push([Math.max(start, offset), at, true]);
    }
    if (at < end) out.push([at, end, false]);
    return out;
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.finish().then(() => cb(), cb);
  }
  private async finish(): Promise<void> {
    await this.fh!.truncate(this.size);
    await this.fh!.close();
    this.fh = undefined;
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = undefined;
    if (!fh) return cb(err);
    fh.close().then(() => cb(err), () => cb(err));
  }
}
