import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { PassThrough } from 'node:stream';
import zlib from 'node:zlib';
import { IntegrityError, messageOf } from './errors.js';
import { FILE_MODE, fsyncPath } from './fsutil.js';
import { HashingStream } from './hash.js';
import { entryProblem, entrySchema, checked, type Artifact, type Entry, type Part } from './manifest.js';
import { shown } from './quote.js';
import type { AgeOpener, AgeSealer } from './age.js';

/** A part's entries artifact (FORMAT.md "Format 2"). */
export const ENTRIES_FILE = 'entries.jsonl.gz';

/** Lines are gathered to this size before they go to gzip: one zlib call per line would cost more than the line. */
const BATCH = 256 * 1024;

/**
 * Writes a part's entries, one JSON line each, as they are found: the agent never holds a tree's
 * entries, whatever the number of files.
 */
export class EntriesWriter {
  private readonly gzip = zlib.createGzip({ level: 6, chunkSize: BATCH });
  private readonly hashing = new HashingStream();
  private readonly done: Promise<void>;
  private pending = '';
  private failure: Error | undefined;
  count = 0;

  constructor(
    readonly file: string,
    readonly artifactPath: string,
    /** `entries` (format 2: a part's one listing of its tar trees), `tree` (formats 3 and 4: a tree's own listing) or `pieces` (format 4: a listing's piece ids, in clear). */
    readonly kind: 'entries' | 'tree' | 'pieces' = 'entries',
    /** Format 4: the gzip goes into one age file to the set's recipients. */
    sealer?: AgeSealer,
  ) {
    const out = createWriteStream(file, { mode: FILE_MODE, highWaterMark: 1 << 20 });
    this.done = sealer ? pipeline(this.gzip, sealer.sealStream(), this.hashing, out) : pipeline(this.gzip, this.hashing, out);
    this.done.catch((err: Error) => (this.failure ??= err));
  }

  /** Adds one entry; resolves at once unless gzip is behind (then when it has caught up). */
  async add(e: Entry): Promise<void> {
    return this.addLine(JSON.stringify(e));
  }

  /** Adds one line of text (a piece id, for a `pieces` artifact). */
  async addLine(line: string): Promise<void> {
    this.pending += line + '\n';
    this.count++;
    if (this.pending.length >= BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.failure) throw this.failure;
    const more = this.gzip.write(this.pending);
    this.pending = '';
    if (!more) await Promise.race([once(this.gzip, 'drain'), this.done]);
  }

  /** Ends the file, fsyncs it, and gives its artifact. */
  async finish(): Promise<Artifact> {
    if (this.pending) await this.flush();
    this.gzip.end();
    await this.done;
    if (this.failure) throw this.failure;
    await fsyncPath(this.file);
    await fsp.chmod(this.file, FILE_MODE);
    return { path: this.artifactPath, kind: this.kind, size: this.hashing.bytes, sha256: this.hashing.digest(), mode: 0o100600 };
  }

  async abort(): Promise<void> {
    this.gzip.destroy();
    await this.done.catch(() => undefined);
    await fsp.rm(this.file, { force: true });
  }
}

/**
 * The set path of a part's tree artifact by the name its component gave it:
 * `<name>.tree.jsonl.gz` (format 3), `<name>.tar.gz` or `<name>.tar` (format 2), `<name>.zip` (format 1).
 */
export function treeArtifactOf(part: Pick<Part, 'artifacts' | 'node' | 'component'>, name: string): string | undefined {
  const dir = `${part.node}/${part.component}/`;
  const names = [`${dir}${treeListingName(name)}`, `${dir}${treeListingName(name, true)}`, `${dir}${name}.tar.gz`, `${dir}${name}.tar`, `${dir}${name}.zip`];
  return part.artifacts.find((a) => (a.kind === 'tree' || a.kind === 'tar' || a.kind === 'zip') && names.includes(a.path))?.path;
}

/** The entries artifact of a format-2 part, if it has one. */
export function entriesArtifact(part: Pick<Part, 'artifacts'>): Artifact | undefined {
  return part.artifacts.find((a) => a.kind === 'entries');
}

/** Format 3's listing of a tree: `<name>.tree.jsonl.gz`; format 4's is that encrypted, `<name>.tree.jsonl.gz.age`. */
export const treeListingName = (name: string, encrypted = false): string => `${name}.tree.jsonl.gz${encrypted ? '.age' : ''}`;

/**
 * A part's entries, one by one, in archive order, of any format: format 1's from the manifest,
 * format 2's streamed from the entries artifact, format 3's from each tree artifact in turn, with
 * every line checked (schema, archive, extents) before it is given out. A damaged, truncated or
 * malformed file ends it with one line naming the file and the line. `archive` keeps only that
 * archive's entries.
 */
export async function* partEntries(setDir: string, part: Part, archive?: string, opener?: AgeOpener): AsyncGenerator<Entry> {
  if (part.entries) {
    for (const e of part.entries) if (!archive || e.archive === archive) yield e;
    return;
  }
  const trees = part.artifacts.filter((a) => a.kind === 'tree');
  if (trees.length > 0) {
    const names = new Set(trees.map((a) => a.path));
    let n = 0;
    for (const t of trees) {
      if (archive && t.path !== archive) continue;
      for await (const e of listingLines(setDir, t, names, opener)) {
        n++;
        yield e;
      }
    }
    // One tree of several cannot be counted against the part's total; its own SHA-256 vouches for it.
    if ((!archive || trees.length === 1) && n !== part.entryCount) throw new IntegrityError(`${trees.map((t) => t.path).join(', ')} ${trees.length === 1 ? 'holds' : 'hold'} ${n} entries, its part record says ${part.entryCount}`);
    return;
  }
  const list = entriesArtifact(part);
  if (!list) return;
  const tars = new Set(part.artifacts.filter((a) => a.kind === 'tar').map((a) => a.path));
  let n = 0;
  for await (const e of listingLines(setDir, list, tars)) {
    n++;
    if (!archive || e.archive === archive) yield e;
  }
  if (n !== part.entryCount) throw new IntegrityError(`${list.path} holds ${n} entries, its part record says ${part.entryCount}`);
}

/** The checked lines of one listing file (format 2's entries artifact, or a format-3 tree). */
async function* listingLines(setDir: string, list: Artifact, trees: Set<string>, opener?: AgeOpener): AsyncGenerator<Entry> {
  const file = path.join(setDir, list.path);
  const encrypted = list.path.endsWith('.age');
  if (encrypted && !opener) throw new IntegrityError(`${list.path} is encrypted: its file names are read with the identity (--identity)`);
  const gunzip = zlib.createGunzip({ chunkSize: BATCH });
  const text = new PassThrough();
  // The pipeline hands its error to every stream of it, readline's input too: it is named below.
  // A damaged gzip (a truncated end) must not pass for a shorter listing: its error ends the reading.
  let broken: unknown;
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  const flowing = (encrypted ? pipeline(input, opener!.openStream(list.path), gunzip, text) : pipeline(input, gunzip, text)).catch((err: unknown) => void (broken ??= err));
  const named = (err: unknown) => (err instanceof IntegrityError ? err : new IntegrityError((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${list.path} is missing` : `${list.path} is damaged: ${messageOf(err)}`));
  let n = 0;
  try {
    for await (const lines of lineBatches(text)) {
      for (const line of lines) {
        n++;
        const where = `${list.path} line ${n}`;
        let raw: unknown;
        try {
          raw = JSON.parse(line);
        } catch {
          throw new IntegrityError(`${where} is not valid JSON`);
        }
        const e = checked(entrySchema, raw, where);
        const problem = entryProblem(e, trees);
        if (problem) throw new IntegrityError(`${where}: key '${shown(problem.key)}': ${problem.message}`);
        yield e;
      }
    }
    await flowing;
    if (broken) throw broken;
  } catch (err) {
    throw named(err);
  } finally {
    text.destroy();
    await flowing;
  }
}

/**
 * A text stream's lines, a chunk's worth at a time. readline's async iterator costs a promise
 * and an event per line, which was a third of reading a 10,000-line parent listing (bench
 * item 13); here a 256 KiB chunk costs one. A last line without its newline is a line too, as
 * readline has it.
 */
async function* lineBatches(text: AsyncIterable<Buffer>): AsyncGenerator<string[]> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of text) {
    const lines = (rest + decoder.write(chunk)).split('\n');
    rest = lines.pop()!;
    if (lines.length) yield lines;
  }
  rest += decoder.end();
  if (rest) yield [rest];
}

/** A part's entries (of one archive) in memory: for restores, which plan directories and links over all of them. */
export async function loadEntries(setDir: string, part: Part, archive?: string, opener?: AgeOpener): Promise<Entry[]> {
  const out: Entry[] = [];
  for await (const e of partEntries(setDir, part, archive, opener)) out.push(e);
  return out;
}
