import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import type { SetInfo } from '../proto/generated/lsbackup/v1/SetInfo.js';
import { InputError, IntegrityError, messageOf } from '../common/errors.js';
import { FORMAT, FORMAT_4, MANIFEST, UNSEALED_NOTE, isSealed, listSetIds, readManifest, readManifestIfAny, readManifestKeyed, setDir, type Manifest } from '../common/manifest.js';
import { openSet, type SetOpening } from '../common/set-keys.js';
import type { BackupKey } from '../common/keys.js';
import { checkArtifacts } from '../common/verify.js';
import { sha256File } from '../common/hash.js';
import { PROGRESS_EVERY_MS, throttle } from '../common/throttle.js';
import { checkArchive } from '../common/archive.js';
import { checkTree } from '../common/tar-tree.js';
import { partEntries } from '../common/entries-file.js';
import { badPieceName, checkStoreTree, type PieceVerdicts } from '../common/store-tree.js';
import { storeOfTarget, type Store } from '../common/store.js';
import { forEachPieceId } from './store-live.js';
import { createHash, randomBytes } from 'node:crypto';
import { shown } from '../common/quote.js';

/** A set is named by its directory: that is what restore, prune and delete act on. */
export function setInfoOf(m: Manifest, dirName = m.id): SetInfo {
  return {
    backupId: dirName,
    status: m.status,
    // Format 3: what the set restores (its data is in the store) and what it added; before: its files.
    bytes: m.format === FORMAT ? m.parts.reduce((s, p) => s + p.bytes, 0) : m.parts.reduce((s, p) => s + p.artifacts.reduce((t, a) => t + a.size, 0), 0),
    newBytes: m.format === FORMAT ? m.parts.reduce((s, p) => s + (p.newBytes ?? 0), 0) : m.parts.reduce((s, p) => s + p.artifacts.reduce((t, a) => t + a.size, 0), 0),
    format: m.format,
    files: m.parts.reduce((s, p) => s + p.artifacts.length, 0),
    nodes: [...new Set(m.parts.map((p) => p.node))],
    components: [...new Set(m.parts.map((p) => p.component))],
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    reasons: [
      ...m.reasons,
      ...(dirName === m.id ? [] : [`directory ${dirName} holds the manifest of set ${m.id} (copied or renamed)`]),
      ...(isSealed(m) ? [] : [UNSEALED_NOTE]),
    ],
  };
}

/** A set whose manifest fails its digest or schema: listed, so nobody mistakes it for an incomplete run, but nothing of it is believed. */
async function corruptInfo(target: string, id: string, why: string): Promise<SetInfo> {
  const st = await fsp.stat(setDir(target, id));
  return { backupId: id, status: 'corrupt', bytes: 0, files: 0, nodes: [], components: [], startedAt: st.mtime.toISOString(), finishedAt: '', reasons: [why] };
}

async function incompleteInfo(target: string, id: string): Promise<SetInfo> {
  const dir = setDir(target, id);
  const nodes = (await fsp.readdir(dir).catch(() => [])).filter((n) => !n.startsWith('.'));
  const st = await fsp.stat(dir);
  return { backupId: id, status: 'incomplete', bytes: 0, files: 0, nodes, components: [], startedAt: st.mtime.toISOString(), finishedAt: '', reasons: [`no ${MANIFEST}: never committed (coordinator stopped or still running)`] };
}

/** Every set of a target, with its manifest unless it is incomplete. */
export async function readSets(target: string): Promise<{ info: SetInfo; manifest?: Manifest }[]> {
  const out: { info: SetInfo; manifest?: Manifest }[] = [];
  for (const id of await listSetIds(target)) {
    let manifest: Manifest | undefined;
    try {
      manifest = await readManifestIfAny(target, id);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      out.push({ info: await corruptInfo(target, id, messageOf(err)) });
      continue;
    }
    out.push({ info: manifest ? setInfoOf(manifest, id) : await incompleteInfo(target, id), manifest });
  }
  return out;
}

export async function listSets(target: string): Promise<SetInfo[]> {
  return (await readSets(target)).map((s) => s.info);
}

export async function showSet(target: string, id: string): Promise<{ set: SetInfo; manifestJson: string }> {
  if (!target) throw new InputError('no target given (-t <target_path>)');
  const m = await readManifestIfAny(target, id);
  if (!m) return { set: await incompleteInfo(target, id), manifestJson: '' };
  return { set: setInfoOf(m, id), manifestJson: JSON.stringify(m) };
}

/** Every file in a set directory (relative, '/'-separated), manifest aside. */
async function filesOfSet(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const d of await fsp.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) await walk(child);
      else if (child !== MANIFEST) out.push(child);
    }
  };
  await walk('');
  return out.sort();
}

/** Each part record is still the file its manifest names (size and SHA-256). */
async function checkRecords(dir: string, m: Manifest): Promise<string[]> {
  const bad: string[] = [];
  for (const p of m.parts) {
    if (!p.record) continue;
    try {
      const { sha256, size } = await sha256File(path.join(dir, p.record.path));
      if (size !== p.record.size || sha256 !== p.record.sha256) bad.push(`${p.record.path}: differs from the record the manifest names`);
    } catch (err) {
      bad.push(`${p.record.path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : messageOf(err)}`);
    }
  }
  return bad;
}

/**
 * Recomputes every artifact's size and SHA-256, reads every entry of every zip that matched
 * (unless `quick`), and names each file that is missing, differs, or is in the set unlisted.
 */
export interface VerifyOptions {
  quick?: boolean;
  /** Format 3: the share (0-1) of pieces to read; the others are only looked up. 0 or absent: all. */
  sample?: number;
  /** Format 3: what this run found of each piece, shared by the sets one run verifies. */
  verdicts?: PieceVerdicts;
  /** Filled with the bad pieces this set names. */
  badPieces?: Set<string>;
  /** The pieces `sample` picks, when one run verifies several sets. */
  picks?: (id: string) => boolean;
  /** The coordinator's backup key: format-4 sets written with it have their MAC checked. */
  backupKey?: BackupKey;
  /** Format 4: the operator's identity file's text; with it, listings and pieces are read and checked as in format 3. */
  identity?: string;
  keyIds?: string[];
}

/** A random share of pieces, the same for every set of one run. */
function sampler(share: number | undefined): ((id: string) => boolean) | undefined {
  if (!share || share >= 1) return undefined;
  const seed = randomBytes(16);
  return (id) => createHash('sha256').update(seed).update(id).digest().readUInt32BE(0) < share * 0x1_0000_0000;
}

export async function verifySet(target: string, id: string, emit: (ev: ProgressEvent) => void, opts: VerifyOptions = {}): Promise<RunSummary> {
  const m = await readManifest(target, id);
  const dir = setDir(target, id);
  const artifacts = m.parts.flatMap((p) => p.artifacts);
  const encrypted = m.format === FORMAT_4;
  const bad: string[] = [];
  // Format 4 with the identity: its MAC through the key the identity opens, then every piece read as in format 3.
  let opening: SetOpening | undefined;
  if (encrypted && opts.identity) {
    try {
      opening = (await openSet(target, m, opts.identity, opts.keyIds ?? [])).opening;
    } catch (err) {
      bad.push(messageOf(err));
    }
  }
  // Format 4 without it: the listings cannot be read, their clear piece lists can.
  const deep = !encrypted || opening;
  const trees = opts.quick ? [] : artifacts.filter((a) => (deep ? a.kind === 'zip' || a.kind === 'tar' || a.kind === 'tree' : a.kind === 'pieces'));
  const verdicts = opts.verdicts ?? new Map();
  const sample = opts.picks ?? sampler(opts.sample);
  // What the trees hold unpacked is known up front only in format 1; format 2 counts their packed size.
  const total = artifacts.reduce((t, a) => t + a.size, 0) + trees.reduce((t, a) => t + a.size, 0);
  let done = 0;
  const due = throttle(PROGRESS_EVERY_MS);
  const onBytes = (n: number) => {
    done += n;
    if (due()) {
      emit({ phase: 'running', backupId: id, bytesDone: done, bytesTotal: total });
    }
  };
  emit({ phase: 'started', backupId: id, bytesTotal: total, message: `verifying ${artifacts.length} files${opts.quick ? ' (quick: artifacts only)' : ` and the entries of ${trees.length} archives`}` });
  if (!isSealed(m)) emit({ phase: 'info', backupId: id, message: UNSEALED_NOTE });
  if (encrypted && !opts.identity) {
    const keyId = m.encryption!.keyId;
    if (opts.backupKey?.keyId === keyId) await readManifestKeyed(target, id, opts.backupKey.idKey).catch((err: unknown) => void bad.push(messageOf(err)));
    else emit({ phase: 'info', backupId: id, message: `encrypted with key ${keyId.slice(0, 16)}…, not the coordinator's: its MAC is checked by a restore with the identity, not here; pieces are checked to exist, not read` });
  }
  bad.push(...(await checkArtifacts(dir, m.parts, onBytes)));
  const listed = new Set([...artifacts.map((a) => a.path), ...m.parts.flatMap((p) => (p.record ? [p.record.path] : []))]);
  bad.push(...(await checkRecords(dir, m)));
  for (const f of await filesOfSet(dir)) if (!listed.has(f)) bad.push(`${shown(f)}: not listed in the manifest`);
  for (const part of m.parts) {
    for (const z of part.artifacts.filter((a) => trees.includes(a))) {
      // An archive (or entries file) that failed its own checksum is named already; reading it would only repeat it.
      const list = part.artifacts.find((a) => a.kind === 'entries');
      if (bad.some((b) => b.startsWith(`${z.path}: `) || (list && b.startsWith(`${list.path}: `)))) continue;
      const file = path.join(dir, z.path);
      if (z.kind === 'pieces') bad.push(...(await checkPiecesExist(storeOfTarget(target), dir, z.path, verdicts, opts.badPieces)));
      else if (z.kind === 'tree') bad.push(...(await checkStoreTree(storeOfTarget(target, opening?.codec), z.path, partEntries(dir, part, z.path, opening?.opener), verdicts, { sample, onBytes, badPieces: opts.badPieces })));
      else if (z.kind === 'tar') bad.push(...(await checkTree(file, z.path, partEntries(dir, part, z.path), onBytes)));
      else bad.push(...(await checkArchive(file, z.path, (part.entries ?? []).filter((e) => e.archive === z.path), onBytes)));
    }
  }
  for (const b of bad) emit({ phase: 'failed', backupId: id, message: b });
  return { backupId: id, status: bad.length ? 'failed' : 'ok', reasons: bad, parts: [], notCovered: [], setDir: dir };
}

/**
 * Verifies every set of the target that has a manifest, reading each piece of the store once
 * (FORMAT.md "Verify and restore of format 3"), and names, for every bad piece, every set that
 * uses it. Incomplete and corrupt sets are named as such.
 */
export async function verifyAllSets(target: string, emit: (ev: ProgressEvent) => void, opts: VerifyOptions = {}): Promise<RunSummary> {
  const verdicts: PieceVerdicts = new Map();
  const picks = sampler(opts.sample);
  const reasons: string[] = [];
  const usedBy = new Map<string, string[]>();
  const sets = await readSets(target);
  for (const { info, manifest } of sets) {
    const id = info.backupId!;
    if (!manifest) {
      // An incomplete set is not damage (a backup running or cut off); a corrupt manifest is.
      if (info.status === 'corrupt') reasons.push(`${id}: corrupt: ${info.reasons?.[0] ?? ''}`);
      else emit({ phase: 'info', backupId: id, message: `${id}: ${info.status}, not verified: ${info.reasons?.[0] ?? ''}` });
      continue;
    }
    const badPieces = new Set<string>();
    const r = await verifySet(target, id, emit, { ...opts, verdicts, badPieces, picks });
    reasons.push(...(r.reasons ?? []).map((x) => `${id}: ${x}`));
    for (const p of badPieces) usedBy.set(p, [...(usedBy.get(p) ?? []), id]);
  }
  for (const [piece, ids] of usedBy) reasons.push(`${badPieceName(piece)}: ${verdicts.get(piece)}; used by ${ids.length === 1 ? 'set' : 'sets'} ${ids.join(', ')}`);
  return { backupId: '', status: reasons.length ? 'failed' : 'ok', reasons, parts: [], notCovered: [], setDir: target };
}

/**
 * Format 4 without the identity: every piece a clear piece list names is in the store (their
 * content is checked by a restore, which decrypts: age's tags and the keyed ids).
 */
async function checkPiecesExist(store: Store, dir: string, rel: string, verdicts: PieceVerdicts, badPieces?: Set<string>): Promise<string[]> {
  const problems: string[] = [];
  try {
    // The reader prune's mark uses: a line that is not a piece id, or a damaged gzip, ends it with one line.
    await forEachPieceId(path.join(dir, rel), rel, (id) => {
      if (!verdicts.has(id)) verdicts.set(id, store.locate(id) ? undefined : `${badPieceName(id)} is missing from the store`);
      const v = verdicts.get(id);
      if (v) {
        problems.push(`${rel}: ${v}`);
        badPieces?.add(id);
      }
    }, true);
  } catch (err) {
    problems.push(messageOf(err));
  }
  return problems;
}

/** Entries sent per message of `show --files`: well under gRPC's 4 MiB at ~0.5 KiB each. */
const FILES_PER_CHUNK = 2000;

/**
 * The entries of a set's parts (those of `filter.node` / `filter.component` when given), as JSON
 * lines in bounded batches, read from the set as they are sent.
 */
export async function* setFiles(target: string, id: string, filter: { node?: string; component?: string; identity?: string; keyIds?: string[] }): AsyncGenerator<string[]> {
  // Format 4's file names are encrypted: read only with the identity, and only from a manifest its key vouches for.
  const { manifest: m, opening } = await openSet(target, await readManifest(target, id), filter.identity ?? '', filter.keyIds ?? []);
  const dir = setDir(target, id);
  const parts = m.parts.filter((p) => (!filter.node || p.node === filter.node) && (!filter.component || p.component === filter.component));
  if (parts.length === 0 && (filter.node || filter.component)) throw new InputError(`backup ${id} has no part${filter.node ? ` of node '${shown(filter.node)}'` : ''}${filter.component ? ` for '${shown(filter.component)}'` : ''}`);
  let chunk: string[] = [];
  for (const part of parts) {
    for await (const e of partEntries(dir, part, undefined, opening?.opener)) {
      chunk.push(JSON.stringify({ node: part.node, component: part.component, ...e }));
      if (chunk.length >= FILES_PER_CHUNK) {
        yield chunk;
        chunk = [];
      }
    }
  }
  if (chunk.length) yield chunk;
}
