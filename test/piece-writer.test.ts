/**
 * The store's piece writer makes one batch durable (syncfs, then renames) while the next batch is
 * written (FORMAT.md "Format 3", writing a piece). What that must not lose: a piece of the batch in
 * flight is known (not written twice), every piece is named and whole after finish(), and a
 * failure of the batch in flight reaches finish() instead of vanishing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { PieceWriter, Store, pieceId, storedFiles } from '../common/store.js';
import { tempDir } from './helpers/harness.js';

/** One more piece than a batch holds (BATCH_PIECES in common/store.ts): the put of the last hands the first 4,096 to a syncfs. */
const BATCH = 4096;

const pieceOf = (i: number): Buffer => Buffer.from(`piece ${i}\n`);

/** Temp files of pieces not yet named, in the store's data directories. */
function tempFiles(store: Store): string[] {
  const out: string[] = [];
  for (const ab of readdirSync(store.dataDir)) for (const n of readdirSync(path.join(store.dataDir, ab))) if (n.endsWith('.tmp')) out.push(path.join(store.dataDir, ab, n));
  return out;
}

async function freshStore(): Promise<Store> {
  const store = new Store(path.join(tempDir('pieces'), 'store'));
  await store.ensure();
  return store;
}

test('a batch made durable while the next is written: its pieces are not written twice and are all named and whole after finish', async () => {
  const store = await freshStore();
  const w = new PieceWriter(store);
  for (let i = 0; i < BATCH; i++) await w.put(pieceId(pieceOf(i)), pieceOf(i), 6);
  // The 4,096th put handed the batch over; its syncfs runs in a child process, so none is named yet.
  assert.equal(tempFiles(store).length, BATCH, 'the batch is still under temp names while its syncfs runs');
  // A piece of the batch in flight, put again, is found and not written a second time.
  await w.put(pieceId(pieceOf(7)), pieceOf(7), 6);
  assert.equal(w.reused, 1);
  await w.put(pieceId(pieceOf(BATCH)), pieceOf(BATCH), 6);
  await w.finish();
  assert.equal(w.newPieces, BATCH + 1);
  assert.deepEqual(tempFiles(store), [], 'no temp file is left');
  const named = [...storedFiles(store)];
  assert.equal(named.length, BATCH + 1);
  for (const i of [0, 7, BATCH - 1, BATCH]) {
    const id = pieceId(pieceOf(i));
    assert.ok(named.includes(id), `piece ${i} is named`);
    assert.deepEqual(gunzipSync(readFileSync(store.pieceFile(id))), pieceOf(i));
  }
});

test('a failure of the batch in flight is thrown by finish, not lost', async () => {
  const store = await freshStore();
  const w = new PieceWriter(store);
  for (let i = 0; i < BATCH; i++) await w.put(pieceId(pieceOf(i)), pieceOf(i), 6);
  // Before the batch's syncfs returns, one of its temp files goes (as a sweep of another process might): its rename fails.
  const [victim] = tempFiles(store);
  assert.ok(victim);
  rmSync(victim);
  await assert.rejects(w.finish(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && String(err.message).includes(path.basename(victim)));
});
