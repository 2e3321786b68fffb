/**
 * Format-3 sets made on disk the way a backup makes them, for the store's garbage collection
 * tests: pieces through the real PieceWriter, a tree listing through EntriesWriter, a part record,
 * and a sealed manifest last. Each file is one piece (files under 8 MiB are), so a set is the list
 * of its files' contents.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EntriesWriter, treeListingName } from '../../common/entries-file.js';
import { FORMAT, writeManifest, type Manifest } from '../../common/manifest.js';
import { writePartRecord } from '../../common/part-record.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import type { Entry } from '../../common/manifest.js';
import { PieceWriter, packName, pieceId, storeOfTarget, storedFiles, type Store } from '../../common/store.js';

export const LISTING = `node1/haproxy/${treeListingName('files')}`;

export interface StoreSetOptions {
  /** No manifest: a backup still running, or one that crashed. */
  incomplete?: boolean;
  /** Name the pieces without writing them (they are in the store already, or in its trash). */
  namedOnly?: boolean;
}

/** Writes `contents` as pieces (unless namedOnly) and a set `id` naming them; gives their ids. */
export async function writeStoreSet(target: string, id: string, contents: Buffer[], opts: StoreSetOptions = {}): Promise<string[]> {
  const store = storeOfTarget(target);
  await store.ensure();
  const ids = contents.map(pieceId);
  if (!opts.namedOnly) await putPieces(store, contents);
  const dir = path.join(target, id);
  await fsp.mkdir(path.join(dir, 'node1/haproxy'), { recursive: true, mode: 0o700 });
  const listing = new EntriesWriter(path.join(dir, LISTING), LISTING, 'tree');
  for (const [i, data] of contents.entries()) {
    await listing.add({
      archive: LISTING,
      name: `etc/haproxy/f${i}`,
      path: `/etc/haproxy/f${i}`,
      type: 'file',
      size: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      mode: 0o100644,
      uid: 0,
      gid: 0,
      mtimeNs: '1700000000000000000',
      linkTarget: '',
      pieces: [ids[i]!],
      inode: `64769:${1000 + i}`,
      ctimeNs: '1700000000000000000',
    });
  }
  const artifact = await listing.finish();
  const bytes = contents.reduce((s, c) => s + c.length, 0);
  const part = { node: 'node1', component: 'haproxy' as const, status: 'ok' as const, reason: '', durationMs: 1, bytes, meta: {}, artifacts: [artifact], external: [], entryCount: contents.length, newBytes: 0 };
  const record = await writePartRecord(dir, part);
  if (opts.incomplete) return ids;
  const now = new Date().toISOString();
  const manifest: Manifest = { format: FORMAT, id, status: 'complete', reasons: [], startedAt: now, finishedAt: now, buildDir: '/build', coordinatorVersion: 'test', nodes: { node1: { address: '127.0.0.1' } }, notCovered: [], parts: [{ ...part, record }] };
  await writeManifest(dir, manifest);
  return ids;
}

/** Pieces in the store that no set names (what a crashed backup leaves); gives their ids. */
export async function putPieces(store: Store, contents: Buffer[]): Promise<string[]> {
  await store.ensure();
  const w = new PieceWriter(store);
  for (const data of contents) await w.put(pieceId(data), data, 6);
  await w.finish();
  return contents.map(pieceId);
}

/** Where each piece file of the store is, relative to it: `data/ab/<id>` or `trash/<t>/ab/<id>`. */
export async function storeFiles(store: Store): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fsp.readdir(path.join(store.dir, rel), { withFileTypes: true }).catch(() => [])) {
      const r = path.join(rel, d.name);
      if (d.isDirectory()) await walk(r);
      else if (d.name !== 'store.json') out.push(r);
    }
  };
  await walk('');
  return out.sort();
}

/**
 * Puts `bytes` where a small file line's data is stored: its piece file, or its place in its pack
 * (FORMAT.md "Packs"), the pack gunzipped and gzipped again, so that only that piece differs.
 */
export async function rewriteStored(store: Store, e: Entry, bytes: Buffer): Promise<void> {
  if (e.pack === undefined) return fsp.writeFile(store.pieceFile(e.pieces![0]!), gzipSync(bytes));
  const file = store.pieceFile(packName(e.pack));
  const content = gunzipSync(await fsp.readFile(file));
  bytes.copy(content, e.packAt!);
  await fsp.writeFile(file, gzipSync(content));
}

/** The ids in data/. */
export const inData = (store: Store): Set<string> => new Set(storedFiles(store));

/** The ids in one trash round. */
export async function inTrash(store: Store, round: number): Promise<Set<string>> {
  const dir = path.join(store.trashDir, String(round));
  const out = new Set<string>();
  for (const ab of await fsp.readdir(dir).catch(() => [] as string[])) for (const id of await fsp.readdir(path.join(dir, ab))) out.add(id);
  return out;
}

/** The stored size of pieces (what the collection counts as bytes). */
export async function storedBytes(store: Store, ids: Iterable<string>): Promise<number> {
  let n = 0;
  for (const id of ids) n += (await fsp.stat(store.locate(id)!)).size;
  return n;
}
