/**
 * The sparse-file pieces on their own: the scanner finds the data extents of a real sparse file
 * as it is read, and the writer leaves holes unallocated but never drops a byte that is not zero,
 * whatever the extents it is given say (a manifest is data, not a promise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DataExtentScanner, SparseFileWriter, mayBeSparse } from '../common/sparse.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync('/var/tmp/lsbackup-sparse-');
test.after(() => fsp.rm(dir, { recursive: true, force: true }));

/** 16 MiB with data at 0 (100 bytes), 5 MiB (4 KiB, block-aligned) and the last 10 bytes. */
async function makeSparse(file: string): Promise<Buffer> {
  const fh = await fsp.open(file, 'w');
  await fh.write(Buffer.alloc(100, 1), 0, 100, 0);
  await fh.write(Buffer.alloc(4096, 2), 0, 4096, 5 * MiB);
  await fh.write(Buffer.alloc(10, 3), 0, 10, 16 * MiB - 10);
  await fh.close();
  return fsp.readFile(file);
}

test('the scanner finds the data extents of a sparse file while it is read', async () => {
  const file = path.join(dir, 'src.img');
  const content = await makeSparse(file);
  const st = await fsp.stat(file, { bigint: true });
  assert.ok(mayBeSparse(st), `16 MiB with ${st.blocks} blocks allocated`);
  const scanner = new DataExtentScanner(Number(st.blksize));
  let seen = 0;
  await pipeline(createReadStream(file, { highWaterMark: MiB }), scanner, async (src: AsyncIterable<Buffer>) => {
    for await (const c of src) seen += c.length;
  });
  assert.equal(seen, content.length, 'the scanner passes every byte on');
  const bs = Number(st.blksize);
  assert.deepEqual(scanner.extents(), [[0, bs], [5 * MiB, 4096], [16 * MiB - bs, bs]]);
});

test('a dense file is not taken for a sparse one', async () => {
  const file = path.join(dir, 'dense');
  await fsp.writeFile(file, Buffer.alloc(MiB, 7));
  assert.equal(mayBeSparse(await fsp.stat(file, { bigint: true })), false);
});

test('the writer leaves holes unallocated and the content exact', async () => {
  const content = await makeSparse(path.join(dir, 'orig.img'));
  const out = path.join(dir, 'restored.img');
  await pipeline(Readable.from([content.subarray(0, 3 * MiB), content.subarray(3 * MiB)]), new SparseFileWriter(out, [[0, 4096], [5 * MiB, 4096], [16 * MiB - 4096, 4096]], content.length, 0o600));
  assert.ok((await fsp.readFile(out)).equals(content));
  const st = await fsp.stat(out);
  assert.ok(st.blocks * 512 <= 64 * 1024, `${st.blocks * 512} bytes allocated for 12 KiB of data`);
  assert.equal(st.mode & 0o777, 0o600);
});

test('bytes that are not zero are written even where the extents claim a hole', async () => {
  const content = await makeSparse(path.join(dir, 'orig2.img'));
  const out = path.join(dir, 'lied-to.img');
  await pipeline(Readable.from([content]), new SparseFileWriter(out, [[0, 4096]], content.length, 0o600));
  assert.ok((await fsp.readFile(out)).equals(content), 'the data at 5 MiB and at the end is there');
});

test('a file of holes only comes back as holes of its size', async () => {
  const out = path.join(dir, 'empty.img');
  await pipeline(Readable.from([Buffer.alloc(8 * MiB)]), new SparseFileWriter(out, [], 8 * MiB, 0o600));
  const st = await fsp.stat(out);
  assert.equal(st.size, 8 * MiB);
  assert.equal(st.blocks, 0);
});
