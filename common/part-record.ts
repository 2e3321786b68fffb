import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { IntegrityError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import { checked, MAX_RECORD_BYTES, PART_FORMAT, PART_RECORD, partRecordSchema, type Part, type PartRecord } from './manifest.js';

/** Where a part record is, and what it was when written: what the agent answers with. */
export interface RecordRef {
  path: string;
  size: number;
  sha256: string;
}

/**
 * Writes a part's record to `<node>/<component>/part.json` (FORMAT.md "Format 2"), after its
 * artifacts are on disk: through a temp file, fsync, rename, fsync of the directory.
 */
export async function writePartRecord(setDir: string, part: Omit<PartRecord, 'format'>): Promise<RecordRef> {
  const rel = `${part.node}/${part.component}/${PART_RECORD}`;
  const text = JSON.stringify({ format: PART_FORMAT, ...part }, null, 1) + '\n';
  if (Buffer.byteLength(text) > MAX_RECORD_BYTES) throw new IntegrityError(`${rel} would be ${Buffer.byteLength(text)} bytes, more than a part record may hold (${MAX_RECORD_BYTES})`);
  await writeFileAtomic(path.join(setDir, rel), text);
  return { path: rel, size: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
}

/**
 * A record's bytes. The coordinator reads one per node at every commit (a thousand for a cluster
 * of a thousand), so the usual case is three file-system calls (open, one read of the size the
 * agent answered plus a byte, close) rather than six (open, stat, readFile's own stat and reads,
 * close): a read of a regular file that returns fewer bytes than asked has reached its end.
 * Anything else (longer, or shorter than answered) is read whole, so the messages give its size.
 */
async function readRecordFile(file: string, ref: RecordRef): Promise<Buffer> {
  const fh = await fsp.open(file, 'r');
  try {
    const want = Math.min(Math.max(ref.size, 0), MAX_RECORD_BYTES) + 1;
    const buf = Buffer.allocUnsafe(want);
    const { bytesRead } = await fh.read(buf, 0, want, 0);
    if (bytesRead === ref.size) return buf.subarray(0, bytesRead);
    const { size } = await fh.stat();
    if (size > MAX_RECORD_BYTES) throw new IntegrityError(`${ref.path} is ${size} bytes, more than a part record may hold`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}

/**
 * Reads the record an agent says it wrote, believing it only if it is the file the agent
 * answered with (size and SHA-256), well-formed, and the part it was asked for. One line naming
 * the file when not.
 */
export async function readPartRecord(setDir: string, ref: RecordRef, expected: { node: string; component: string }): Promise<Part> {
  const want = `${expected.node}/${expected.component}/${PART_RECORD}`;
  if (ref.path !== want) throw new IntegrityError(`the agent named its record ${ref.path}, expected ${want}`);
  const file = path.join(setDir, ref.path);
  let text: Buffer;
  try {
    text = await readRecordFile(file, ref);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new IntegrityError(`${ref.path} is not visible to the coordinator: is the target the same shared location on every node?`);
    throw err;
  }
  const sha = createHash('sha256').update(text).digest('hex');
  if (text.length !== ref.size || sha !== ref.sha256) throw new IntegrityError(`${ref.path} is not the record the agent wrote (${text.length} bytes, sha256 ${sha.slice(0, 12)}…; it answered ${ref.size} bytes, ${ref.sha256.slice(0, 12)}…)`);
  let raw: unknown;
  try {
    raw = JSON.parse(text.toString('utf8'));
  } catch {
    throw new IntegrityError(`${ref.path} is not valid JSON`);
  }
  const { format: _format, ...record } = checked(partRecordSchema, raw, ref.path);
  if (record.node !== expected.node || record.component !== expected.component) throw new IntegrityError(`${ref.path} is the record of ${record.node}/${record.component}`);
  return { ...record, record: { ...ref } };
}
