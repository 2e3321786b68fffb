import path from 'node:path';
import type { Artifact, Entry, Manifest } from '../common/manifest.js';
import { readManifest, setDir as setDirOf } from '../common/manifest.js';
import { ENTRIES_FILE, EntriesWriter, partEntries, treeListingName } from '../common/entries-file.js';
import { treeFileName, writeTree } from '../common/tar-tree.js';
import { writeStoreTree } from '../common/store-tree.js';
import { PieceWriter, storeOfSet, type Store } from '../common/store.js';
import { sha256File } from '../common/hash.js';
import { messageOf } from '../common/errors.js';
import { PIECES_SUFFIX } from '../common/manifest.js';
import type { SetSealing } from '../common/set-keys.js';

/*
 * Where a part's trees of files go: format 3's content store, compared with the parent set so
 * that unchanged files are not read (FORMAT.md "Format 3"), or format 2's tar artifacts.
 */

/** What a format-3 backup shares between its parts: the store, and the parent set if there is one. */
export interface StoreRun {
  store: Store;
  parent?: { id: string; dir: string; manifest: Manifest };
  /** Format 4: everything is sealed to the set's recipients, and there is no parent (FORMAT.md "Incremental backups"). */
  sealing?: SetSealing;
}

/**
 * Opens the store beside the set and reads the parent's manifest (checked as every reader checks
 * it). A parent that cannot be read is no parent: everything is read, and `report` says why.
 */
export async function openStoreRun(target: string, setDir: string, parentId: string, report: (line: string) => void, sealing?: SetSealing): Promise<StoreRun> {
  const store = storeOfSet(setDir, sealing?.codec);
  await store.ensure();
  if (sealing) return { store, sealing };
  if (!parentId) return { store };
  try {
    const manifest = await readManifest(target, parentId);
    return { store, parent: { id: parentId, dir: setDirOf(target, parentId), manifest } };
  } catch (err) {
    report(`every file is read: the parent set ${parentId} cannot be used (${messageOf(err)})`);
    return { store };
  }
}

export interface TreeRequest {
  level: number;
  exclude?: (abs: string) => boolean;
  linked?: boolean;
  onBytes: (n: number) => void;
  signal: AbortSignal;
  report: (line: string) => void;
}

/** One part's trees, of either format; finish() gives what the part record adds for them. */
export class PartTrees {
  private writer: PieceWriter | undefined;
  private entries: EntriesWriter | undefined;
  private listed = 0;
  /** Artifacts that come with the trees: format 4's piece lists. */
  private readonly extra: Artifact[] = [];
  /** What the part's format-3 trees restore (their files' bytes): the data is in the store, not in the set. */
  dataBytes = 0;

  constructor(
    private readonly run: StoreRun | undefined,
    private readonly setDir: string,
    private readonly outDir: string,
    private readonly part: { node: string; component: string },
  ) {}

  private rel(file: string): string {
    return path.relative(this.setDir, file).split(path.sep).join('/');
  }

  async add(name: string, sources: string[], req: TreeRequest): Promise<Artifact> {
    if (!this.run) {
      const file = path.join(this.outDir, treeFileName(name, req.level));
      if (!this.entries) {
        const list = path.join(this.outDir, ENTRIES_FILE);
        this.entries = new EntriesWriter(list, this.rel(list));
      }
      return writeTree(file, this.rel(file), sources, { level: req.level, exclude: req.exclude, onBytes: req.onBytes, signal: req.signal, report: req.report, entries: this.entries });
    }
    this.writer ??= new PieceWriter(this.run.store);
    const sealer = this.run.sealing?.sealer;
    const file = path.join(this.outDir, treeListingName(name, Boolean(sealer)));
    const rel = this.rel(file);
    const listing = new EntriesWriter(file, rel, 'tree', sealer);
    // Format 4: the piece ids a prune needs, in clear beside the encrypted listing.
    const piecesFile = path.join(this.outDir, `${name}${PIECES_SUFFIX}`);
    const pieceList = sealer ? new EntriesWriter(piecesFile, this.rel(piecesFile), 'pieces') : undefined;
    const lines = pieceList
      ? {
          async add(e: Entry) {
            await listing.add(e);
            for (const id of e.pieces ?? []) await pieceList.addLine(id);
          },
        }
      : listing;
    try {
      const parent = await this.parentLines(rel, req.report);
      const counts = await writeStoreTree(rel, sources, { level: req.level, exclude: req.exclude, linked: req.linked, parent, writer: this.writer, listing: lines, onBytes: req.onBytes, signal: req.signal, report: req.report });
      const artifact = await listing.finish();
      if (pieceList) this.extra.push(await pieceList.finish());
      this.listed += listing.count;
      this.dataBytes += counts.bytes;
      if (this.run.parent) req.report(`${name}: ${counts.unchanged} of ${counts.files} files unchanged since ${this.run.parent.id}, not read`);
      return artifact;
    } catch (err) {
      await listing.abort();
      await pieceList?.abort();
      throw err;
    }
  }

  /** The parent's lines of the same tree, once its listing is the file its record names. */
  private async parentLines(rel: string, report: (line: string) => void): Promise<AsyncIterable<Entry> | undefined> {
    const parent = this.run?.parent;
    if (!parent) return undefined;
    const part = parent.manifest.parts.find((p) => p.node === this.part.node && p.component === this.part.component && p.status === 'ok');
    const listing = part?.artifacts.find((a) => a.kind === 'tree' && a.path === rel);
    if (!part || !listing) return undefined;
    const got = await sha256File(path.join(parent.dir, rel)).catch(() => undefined);
    if (!got || got.size !== listing.size || got.sha256 !== listing.sha256) {
      report(`every file of ${rel} is read: the parent set ${parent.id} has a damaged or missing listing of it`);
      return undefined;
    }
    return partEntries(parent.dir, part, rel);
  }

  /** Every piece durable and named, the format-2 entries file closed: what the record adds. */
  async finish(): Promise<{ artifacts: Artifact[]; entryCount: number; newBytes: number }> {
    await this.writer?.finish();
    if (this.entries) {
      const list = await this.entries.finish();
      return { artifacts: [list], entryCount: this.entries.count, newBytes: 0 };
    }
    return { artifacts: [...this.extra], entryCount: this.listed, newBytes: this.writer?.newBytes ?? 0 };
  }

  /** A failed part: temp pieces and the entries file go (pieces already named stay for a prune). */
  async abort(): Promise<void> {
    this.writer?.abort();
    await this.entries?.abort();
  }
}
