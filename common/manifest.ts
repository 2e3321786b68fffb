import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { InputError, IntegrityError, NotFoundError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';
import { shown } from './quote.js';

/** The on-disk shape of a backup set; docs/FORMAT.md is the reference. */
export const FORMAT = 'lsbackup-set/3';
/** Sets this version reads besides: format 2 (part records, tar trees) and format 1 (entries in the manifest, zip trees). */
export const FORMAT_2 = 'lsbackup-set/2';
export const FORMAT_1 = 'lsbackup-set/1';
/** Format 3 with everything that has content encrypted to the operator's keys (FORMAT.md "Format 4"). */
export const FORMAT_4 = 'lsbackup-set/4';
export type SetFormat = typeof FORMAT_4 | typeof FORMAT | typeof FORMAT_2 | typeof FORMAT_1;
/** A part record (`<node>/<component>/part.json`, FORMAT.md "Format 2"). */
export const PART_FORMAT = 'lsbackup-part/2';
export const PART_RECORD = 'part.json';
/** A record is a few artifacts and meta keys: anything bigger is not one. */
export const MAX_RECORD_BYTES = 1 << 20;
export const MANIFEST = 'manifest.json';
export const COMPONENTS = ['haproxy', 'elasticsearch', 'kibana', 'prometheus', 'alertmanager', 'grafana', 'postgresql', 'rabbitmq'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

const ID_RE = /^\d{8}T\d{6}Z$/;
const HEX64 = /^[0-9a-f]{64}$/;
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const ownerId = z.number().int().min(0).max(0xffffffff);
/** Namespaced, printable, no '=': setfattr's restore format could not carry anything else. */
const XATTR_NAME = /^(user|trusted|security|system)\.[\x21-\x3c\x3e-\x7e]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export const setStatuses = ['complete', 'partial', 'failed'] as const;
export const partStatuses = ['ok', 'failed', 'skipped'] as const;

/*
 * One schema gives both the types the code uses and the check every reader makes before it
 * believes a byte of a manifest (docs/FORMAT.md, "manifest.json"). Unknown keys are allowed and
 * dropped: a newer writer may add some, and the digest has covered them already.
 */
export const artifactSchema = z.object({
  path: z.string().min(1),
  kind: z.enum(['zip', 'tar', 'stream', 'entries', 'tree', 'pieces', 'meta']),
  size: count,
  sha256: z.string().regex(HEX64, 'expected 64 lower-case hex digits'),
  mode: z.number().int().min(0).max(0xffff),
});

export const entrySchema = z.object({
  archive: z.string(),
  name: z.string(),
  path: z.string(),
  type: z.enum(['file', 'dir', 'symlink']),
  size: count,
  sha256: z.string().regex(/^([0-9a-f]{64})?$/, 'expected 64 lower-case hex digits, or "" for a directory or symlink'),
  mode: z.number().int().min(0).max(0xffff),
  uid: ownerId,
  gid: ownerId,
  mtimeNs: z.string().regex(/^\d{1,30}$/, 'expected nanoseconds as decimal digits'),
  linkTarget: z.string(),
  // Since 1.4 (FORMAT.md, "Exact metadata"); absent in older sets, meaning none.
  linkOf: z.string().min(1).optional(),
  dataExtents: z.array(z.tuple([count, count])).optional(),
  xattrs: z.record(z.string().regex(XATTR_NAME, 'expected an attribute name of printable ASCII without ='), z.string().regex(BASE64, 'expected base64')).optional(),
  // Format 3 (FORMAT.md "Format 3"): the file's data in the store, and what the next backup compares.
  pieces: z.array(z.string().regex(HEX64, 'expected 64 lower-case hex digits')).optional(),
  inode: z.string().regex(/^\d{1,30}:\d{1,30}$/, 'expected <device>:<inode> in decimal').optional(),
  ctimeNs: z.string().regex(/^\d{1,30}$/, 'expected nanoseconds as decimal digits').optional(),
  // Since 3.1 (FORMAT.md "Packs"): the pack a small file's one piece is in, and where in it.
  pack: z.string().regex(HEX64, 'expected 64 lower-case hex digits').optional(),
  packAt: count.optional(),
});

/** Data a part keeps outside its set directory, as its component declared it (FORMAT.md 1.3). */
export const externalSchema = z.object({
  /** Parts with the same key hold the same data: every node of a cluster, or a copied set. */
  key: z.string().min(1),
  /** For the operator: what it is and where. */
  what: z.string().min(1),
  /** How to delete it by hand when no agent could. */
  byHand: z.string().min(1),
});

const partFields = {
  node: z.string().min(1),
  component: z.enum(COMPONENTS),
  status: z.enum(partStatuses),
  reason: z.string(),
  durationMs: count,
  bytes: count,
  meta: z.record(z.string(), z.string()),
  artifacts: z.array(artifactSchema),
  external: z.array(externalSchema).optional(),
};

const digestRef = z.object({ path: z.string().min(1), size: count, sha256: z.string().regex(HEX64, 'expected 64 lower-case hex digits') });

/** verify and restore join artifact paths to the set directory: they must stay inside their part. */
function checkArtifactPaths(p: { node: string; component: string; artifacts: Artifact[] }, ctx: z.RefinementCtx): void {
  p.artifacts.forEach((a, i) => {
    const inPart = a.path.startsWith(`${p.node}/${p.component}/`) && !a.path.split('/').some((seg) => seg === '..' || seg === '.' || seg === '');
    if (!inPart) ctx.addIssue({ code: 'custom', path: ['artifacts', i, 'path'], message: `expected ${p.node}/${p.component}/<file>, without '..'` });
  });
}

/**
 * Format 2: tar trees list their entries in one entries artifact, and only then. Format 3: tree
 * artifacts are their own listings, and come without tar or entries artifacts.
 */
function checkEntriesArtifact(p: { artifacts: Artifact[]; entryCount: number }, ctx: z.RefinementCtx): void {
  if (p.artifacts.some((a) => a.kind === 'tree' || a.kind === 'meta')) {
    if (p.artifacts.some((a) => a.kind !== 'tree' && a.kind !== 'stream' && a.kind !== 'pieces' && a.kind !== 'meta')) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'tree artifacts come only with stream, pieces and meta artifacts (formats 3 and 4)' });
    return;
  }
  const lists = p.artifacts.filter((a) => a.kind === 'entries').length;
  const trees = p.artifacts.some((a) => a.kind === 'tar');
  if (lists > 1 || (trees && lists === 0) || (!trees && lists > 0)) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'expected one entries artifact exactly when the part has a tar artifact' });
  if (p.artifacts.some((a) => a.kind === 'zip')) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'zip artifacts belong to format 1' });
  if (lists === 0 && p.entryCount !== 0 && !p.artifacts.some((a) => a.kind === 'tree')) ctx.addIssue({ code: 'custom', path: ['entryCount'], message: 'entries counted but no entries artifact' });
}

/** A part of a format-1 manifest: its entries inline. */
export const partSchemaV1 = z
  .object({ ...partFields, entries: z.array(entrySchema) })
  .superRefine((p, ctx) => {
    checkArtifactPaths(p, ctx);
    const zips = new Set(p.artifacts.filter((a) => a.kind === 'zip').map((a) => a.path));
    if (p.artifacts.some((a) => a.kind === 'tar' || a.kind === 'entries' || a.kind === 'tree')) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'tar, entries and tree artifacts belong to formats 2 and 3' });
    const firstOfLink = new Map<string, Entry>();
    p.entries.forEach((e, i) => {
      if (!zips.has(e.archive)) ctx.addIssue({ code: 'custom', path: ['entries', i, 'archive'], message: 'expected one of the zip artifacts of its part' });
      const problem = metadataKeyProblem(e, firstOfLink);
      if (problem) ctx.addIssue({ code: 'custom', path: ['entries', i, problem.key], message: problem.message });
      if (e.type === 'file' && !e.linkOf) firstOfLink.set(e.path, e);
    });
  });

/** What an agent writes to part.json (FORMAT.md "Format 2"; `newBytes` since format 3). */
export const partRecordSchema = z
  .object({ format: z.literal(PART_FORMAT), ...partFields, entryCount: count, newBytes: count.optional() })
  .superRefine((p, ctx) => {
    checkArtifactPaths(p, ctx);
    checkEntriesArtifact(p, ctx);
  });

const checkRecordPath = (p: { node: string; component: string; record?: { path: string } }, ctx: z.RefinementCtx) => {
  if (p.record && p.record.path !== `${p.node}/${p.component}/${PART_RECORD}`) ctx.addIssue({ code: 'custom', path: ['record', 'path'], message: `expected ${p.node}/${p.component}/${PART_RECORD}` });
};

/** A part of a format-2 manifest: its record's content, and which record it came from. */
export const partSchemaV2 = z
  .object({ ...partFields, entryCount: count, newBytes: count.optional(), record: digestRef.optional() })
  .superRefine((p, ctx) => {
    checkArtifactPaths(p, ctx);
    checkEntriesArtifact(p, ctx);
    if (p.artifacts.some((a) => a.kind === 'tree')) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'tree artifacts belong to format 3' });
    checkRecordPath(p, ctx);
  });

/** A part of a format-3 manifest: as format 2's, with tree artifacts instead of tar and entries ones. */
export const partSchemaV3 = z
  .object({ ...partFields, entryCount: count, newBytes: count.optional(), record: digestRef.optional() })
  .superRefine((p, ctx) => {
    checkArtifactPaths(p, ctx);
    if (p.artifacts.some((a) => a.kind !== 'tree' && a.kind !== 'stream')) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'expected tree and stream artifacts only (format 3)' });
    checkRecordPath(p, ctx);
  });

/**
 * A part of a format-4 manifest: format 3's, encrypted (FORMAT.md "Format 4"). Its listings and
 * streams are age files, each listing has its clear `pieces` artifact, and an ok part's meta is
 * its `meta` artifact: the manifest's own `meta` is empty.
 */
export const partSchemaV4 = z
  .object({ ...partFields, entryCount: count, newBytes: count.optional(), record: digestRef.optional() })
  .superRefine((p, ctx) => {
    checkArtifactPaths(p, ctx);
    p.artifacts.forEach((a, i) => {
      const ok = a.kind === 'pieces' ? a.path.endsWith(PIECES_SUFFIX) : (a.kind === 'tree' || a.kind === 'stream' || a.kind === 'meta') && a.path.endsWith('.age');
      if (!ok) ctx.addIssue({ code: 'custom', path: ['artifacts', i], message: 'expected encrypted (.age) tree, stream and meta artifacts and clear .pieces.gz ones (format 4)' });
    });
    const trees = p.artifacts.filter((a) => a.kind === 'tree').map((a) => a.path.replace(/\.tree\.jsonl\.gz\.age$/, ''));
    const lists = p.artifacts.filter((a) => a.kind === 'pieces').map((a) => a.path.slice(0, -PIECES_SUFFIX.length));
    if (trees.length !== lists.length || trees.some((t) => !lists.includes(t))) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'expected one pieces artifact for every tree artifact (format 4)' });
    if (Object.keys(p.meta).length > 0) ctx.addIssue({ code: 'custom', path: ['meta'], message: 'expected no meta in clear (format 4 keeps it in the meta artifact)' });
    if (p.status === 'ok' && p.artifacts.filter((a) => a.kind === 'meta').length !== 1) ctx.addIssue({ code: 'custom', path: ['artifacts'], message: 'expected one meta artifact on an ok part (format 4)' });
    checkRecordPath(p, ctx);
  });

/** A format-4 listing's clear list of piece ids: `<name>.pieces.gz` beside `<name>.tree.jsonl.gz.age`. */
export const PIECES_SUFFIX = '.pieces.gz';

/**
 * A hard link names an earlier plain file of the same archive (restore makes it from that file's
 * data), and a sparse file's extents are ascending ranges inside it.
 */
function metadataKeyProblem(e: Entry, firstOfLink: Map<string, Entry>): { key: string; message: string } | undefined {
  if (e.linkOf !== undefined) {
    const first = firstOfLink.get(e.linkOf);
    if (e.type !== 'file') return { key: 'linkOf', message: 'only a file entry can be a hard link' };
    if (!first || first.archive !== e.archive) return { key: 'linkOf', message: 'expected the path of an earlier file entry of the same archive' };
    if (first.size !== e.size || first.sha256 !== e.sha256) return { key: 'linkOf', message: 'size and sha256 differ from the entry it links to' };
  }
  return e.dataExtents === undefined ? undefined : extentsProblem(e);
}

/** A sparse file's extents: ascending, non-empty ranges inside it. */
function extentsProblem(e: Entry): { key: string; message: string } | undefined {
  if (e.type !== 'file') return { key: 'dataExtents', message: 'only a file entry has data extents' };
  let end = 0;
  for (const [offset, length] of e.dataExtents ?? []) {
    if (offset < end || length === 0 || offset + length > e.size) return { key: 'dataExtents', message: 'expected ascending, non-empty, non-overlapping ranges inside the file' };
    end = offset + length;
  }
  return undefined;
}

/**
 * What can be checked of one entry line on its own (the streaming reader of format 2): the
 * schema, its archive, and its extents. That a `linkOf` names an earlier file is checked where
 * the link is made (restore), since checking it here would keep every path in memory.
 */
export function entryProblem(e: Entry, trees: Set<string>): { key: string; message: string } | undefined {
  if (!trees.has(e.archive)) return { key: 'archive', message: 'expected one of the tree artifacts of its part' };
  if (e.pieces !== undefined && (e.type !== 'file' || e.linkOf !== undefined)) return { key: 'pieces', message: 'only a file entry that is not a hard link has pieces' };
  if (e.pack !== undefined && e.packAt === undefined) return { key: 'packAt', message: 'expected with pack: where the piece lies in the pack' };
  if (e.packAt !== undefined && e.pack === undefined) return { key: 'pack', message: 'expected with packAt: the pack the piece lies in' };
  if (e.pack !== undefined && e.pieces?.length !== 1) return { key: 'pack', message: 'only a line of one piece names a pack' };
  if (e.linkOf !== undefined && e.type !== 'file') return { key: 'linkOf', message: 'only a file entry can be a hard link' };
  return e.dataExtents === undefined ? undefined : extentsProblem(e);
}

/** The manifest's digest, and (format 4) its MAC with the key's idKey over the same canonical bytes (FORMAT.md). */
export const integritySchema = z.object({ sha256: z.string().regex(HEX64, 'expected 64 lower-case hex digits'), mac: z.string().regex(HEX64, 'expected 64 lower-case hex digits').optional() });

/** Format 4: whom a set is encrypted to, and which key's ids and MAC it carries. */
export const recipientSchema = z.string().regex(/^age1[0-9a-z]+$/, 'expected an age X25519 recipient (age1...)');
export const encryptionSchema = z.object({ recipients: z.array(recipientSchema).min(1), keyId: z.string().regex(HEX64, 'expected 64 lower-case hex digits') });

const manifestFields = {
  id: z.string().regex(ID_RE, 'expected an id of the form YYYYMMDDTHHMMSSZ'),
  status: z.enum(setStatuses),
  reasons: z.array(z.string()),
  startedAt: z.string(),
  finishedAt: z.string(),
  buildDir: z.string(),
  coordinatorVersion: z.string(),
  nodes: z.record(z.string(), z.object({ address: z.string() })),
  notCovered: z.array(z.string()),
  integrity: integritySchema.optional(),
};

const completeOnlyIfAllOk = (m: { status: SetStatus; parts: { status: PartStatus }[] }, ctx: z.RefinementCtx) => {
  if (m.status === 'complete' && m.parts.some((p) => p.status === 'failed')) {
    ctx.addIssue({ code: 'custom', path: ['status'], message: "'complete' although a part failed" });
  }
};

export const manifestSchemaV1 = z.object({ format: z.literal(FORMAT_1), ...manifestFields, parts: z.array(partSchemaV1) }).superRefine(completeOnlyIfAllOk);
export const manifestSchemaV2 = z.object({ format: z.literal(FORMAT_2), ...manifestFields, parts: z.array(partSchemaV2) }).superRefine(completeOnlyIfAllOk);
export const manifestSchema = z.object({ format: z.literal(FORMAT), ...manifestFields, parts: z.array(partSchemaV3) }).superRefine(completeOnlyIfAllOk);
export const manifestSchemaV4 = z
  .object({ format: z.literal(FORMAT_4), ...manifestFields, encryption: encryptionSchema, parts: z.array(partSchemaV4) })
  .superRefine((m, ctx) => {
    completeOnlyIfAllOk(m, ctx);
    if (!m.integrity?.mac) ctx.addIssue({ code: 'custom', path: ['integrity', 'mac'], message: 'an encrypted set has a MAC' });
  });

/** The schema of a manifest of the given format string; undefined for one this version does not read. */
export function manifestSchemaOf(format: unknown) {
  return format === FORMAT_4 ? manifestSchemaV4 : format === FORMAT ? manifestSchema : format === FORMAT_2 ? manifestSchemaV2 : format === FORMAT_1 ? manifestSchemaV1 : undefined;
}

export type SetStatus = (typeof setStatuses)[number];
export type PartStatus = (typeof partStatuses)[number];
export type Artifact = z.output<typeof artifactSchema>;
export type Entry = z.output<typeof entrySchema>;
export type ExternalData = z.output<typeof externalSchema>;
export type PartRecord = z.output<typeof partRecordSchema>;
/**
 * A part as every reader sees it, of either format. `component` is any string where parts are
 * built (the agent's report); the schema narrows it on read. `entries` is there only in format 1;
 * format 2 keeps them in the part's entries artifact (common/entries-file.ts reads both).
 */
export type Part = Omit<z.output<typeof partSchemaV2>, 'component'> & { component: string; entries?: Entry[] };
export type Manifest = Omit<z.output<typeof manifestSchema>, 'parts' | 'format'> & { format: SetFormat; parts: Part[]; encryption?: Encryption };
export type Encryption = z.output<typeof encryptionSchema>;


export function newSetId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function checkSetId(id: string): string {
  if (!ID_RE.test(id)) throw new InputError(`backup id '${shown(id)}' is not an id of the form YYYYMMDDTHHMMSSZ`);
  return id;
}

export function setDir(target: string, id: string): string {
  return path.join(target, checkSetId(id));
}

export function setStatusOf(parts: Pick<Part, 'status'>[]): SetStatus {
  if (parts.length === 0 || parts.every((p) => p.status === 'failed')) return 'failed';
  if (parts.some((p) => p.status === 'failed')) return 'partial';
  return parts.some((p) => p.status === 'ok') ? 'complete' : 'failed';
}

/**
 * The canonical form the digest is taken over (FORMAT.md): keys sorted at every level, no
 * whitespace. Taken from the parsed JSON, so keys this version does not know are covered too.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

/** SHA-256 of everything in a manifest but its `integrity`. */
export function manifestDigest(m: object): string {
  const { integrity: _ignored, ...content } = m as Record<string, unknown>;
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

/** HMAC-SHA256 with a format-4 key's idKey over what the digest covers (FORMAT.md "Format 4"). */
export function manifestMac(m: object, idKey: Buffer): string {
  const { integrity: _ignored, ...content } = m as Record<string, unknown>;
  return createHmac('sha256', idKey).update(canonicalJson(content)).digest('hex');
}

/** The manifest with its digest (and, given the set's idKey, its MAC): what is written. */
export function sealManifest<M extends object>(m: M, idKey?: Buffer): M & { integrity: { sha256: string; mac?: string } } {
  const { integrity: _old, ...content } = m as M & { integrity?: unknown };
  return { ...(content as M), integrity: { sha256: manifestDigest(content), ...(idKey ? { mac: manifestMac(content, idKey) } : {}) } };
}

export async function writeManifest(dir: string, manifest: Manifest, idKey?: Buffer): Promise<void> {
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(sealManifest(manifest, idKey), null, 2) + '\n');
}

/**
 * A format-4 manifest read and believed only if its MAC is the one `idKey` gives: what a restore
 * and a keyed verify read (FORMAT.md "Authenticity"). Anyone can recompute a SHA-256; only the
 * key's holders can make this MAC. Other formats are read as always.
 */
export async function readManifestKeyed(target: string, id: string, idKey: Buffer): Promise<Manifest> {
  const file = path.join(setDir(target, id), MANIFEST);
  const text = await fsp.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new IntegrityError(`backup '${id}' is incomplete (no ${MANIFEST}); it was never committed`) : err;
  });
  const manifest = parseManifest(text, file);
  if (manifest.format !== FORMAT_4) return manifest;
  const raw = JSON.parse(text) as Record<string, unknown>;
  const want = Buffer.from(manifestMac(raw, idKey), 'hex');
  const got = Buffer.from(String((raw.integrity as { mac?: string }).mac ?? ''), 'hex');
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw new IntegrityError(`manifest ${file}: its MAC is not the one of key ${manifest.encryption!.keyId.slice(0, 16)}…: it was changed after it was written, or written by someone without the key; refusing it`);
  return manifest;
}

/**
 * Checks a manifest's text before anything of it is believed: JSON, format, its own digest when
 * it has one, then the schema. One line naming the file and what is wrong.
 */
export function parseManifest(text: string, file: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new IntegrityError(`manifest ${file} is not valid JSON`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new IntegrityError(`manifest ${file} is not a JSON object`);
  const obj = raw as Record<string, unknown>;
  const schema = manifestSchemaOf(obj.format);
  if (!schema) throw new IntegrityError(`manifest ${file} has format '${shown(obj.format)}', this lsbackup reads ${FORMAT_1}, ${FORMAT_2}, ${FORMAT} and ${FORMAT_4}`);
  const integrity = obj.integrity as { sha256?: unknown } | undefined;
  if (integrity && typeof integrity === 'object' && typeof integrity.sha256 === 'string' && integrity.sha256 !== manifestDigest(obj)) {
    throw new IntegrityError(`manifest ${file}: digest mismatch (integrity.sha256 does not match its content): it was changed or damaged after it was written`);
  }
  const manifest = checked(schema, raw, `manifest ${file}`) as Manifest;
  // After the digest and the schema: the digest covers the manifest as written, not this reading of it.
  for (const part of manifest.parts) {
    part.external ??= externalBefore13(part);
    part.entryCount ??= part.entries?.length ?? 0;
  }
  return manifest;
}

/** A schema's verdict as one line naming the thing and its first wrong key; never a stack trace. */
export function checked<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  throw new IntegrityError(`${what}: key '${shown(key)}': ${shown(issue.message)}`);
}

/**
 * Sets written before 1.3 do not list their outside data: there only the elasticsearch part's
 * snapshot lived outside the set, named by its meta, on failed parts too once it was started
 * (FORMAT.md, "Data outside the set"). The only place that reads a component's meta for it.
 */
function externalBefore13(part: Part): ExternalData[] {
  const { snapshot, repository, location } = part.meta;
  if (part.component !== 'elasticsearch' || !snapshot) return [];
  return [{ key: JSON.stringify([location, snapshot]), what: `Elasticsearch snapshot ${snapshot} in repository ${repository} (${location})`, byHand: `DELETE /_snapshot/${repository}/${snapshot}` }];
}

/** Whether a manifest read by this version had its own digest checked (FORMAT.md 1.1). */
export function isSealed(m: Manifest): boolean {
  return Boolean(m.integrity?.sha256);
}

export const UNSEALED_NOTE = 'manifest has no integrity digest (written before format 1.1): its own integrity is unchecked';

/** Reads a set's manifest; `undefined` when the set is incomplete (no manifest yet). */
export async function readManifestIfAny(target: string, id: string): Promise<Manifest | undefined> {
  const dir = setDir(target, id);
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (!(await isDir(dir))) throw new NotFoundError(`backup '${id}' not found in ${shown(target)}`);
    return undefined;
  }
  return parseManifest(text, file);
}

export async function readManifest(target: string, id: string): Promise<Manifest> {
  const m = await readManifestIfAny(target, id);
  if (!m) throw new IntegrityError(`backup '${id}' is incomplete (no ${MANIFEST}); it was never committed`);
  return m;
}

export async function listSetIds(target: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fsp.readdir(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InputError(`target '${shown(target)}' does not exist`);
    throw err;
  }
  return names.filter((n) => ID_RE.test(n)).sort();
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The parts of `node` a restore of `components` (all when empty) will write. A part that was
 * asked for and failed or was skipped, or a node with nothing restorable, is refused: a restore
 * that restores nothing must not end "ok".
 */
export function restorableParts(m: Manifest, node: string, components: string[]): Part[] {
  const nodeParts = m.parts.filter((p) => p.node === node);
  if (nodeParts.length === 0) throw new NotFoundError(`node '${shown(node)}' has no parts in backup ${m.id} (nodes: ${[...new Set(m.parts.map((p) => p.node))].join(', ')})`);
  for (const w of components) {
    const p = nodeParts.find((x) => x.component === w);
    if (!p) throw new NotFoundError(`backup ${m.id} has no '${shown(w)}' part for node ${node} (it has: ${nodeParts.map((x) => x.component).join(', ')})`);
    if (p.status !== 'ok') throw new IntegrityError(`backup ${m.id}: part ${node}/${w} ${p.status === 'failed' ? 'failed' : 'was skipped'} during the backup (${p.reason || 'no reason recorded'}); it holds nothing to restore`);
  }
  const parts = nodeParts.filter((p) => p.status === 'ok' && (components.length === 0 || components.includes(p.component)));
  if (parts.length === 0) throw new IntegrityError(`backup ${m.id} holds nothing to restore on ${node}: ${nodeParts.map((p) => `${p.component} ${p.status}`).join(', ')}`);
  return parts;
}
