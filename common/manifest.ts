import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError, IntegrityError, NotFoundError } from './errors.js';
import { writeFileAtomic } from './fsutil.js';

/** The on-disk shape of a backup set; docs/FORMAT.md is the reference. */
export const FORMAT = 'lsbackup-set/1';
export const MANIFEST = 'manifest.json';
export const COMPONENTS = ['haproxy', 'elasticsearch', 'kibana', 'prometheus', 'alertmanager', 'grafana', 'postgresql', 'rabbitmq'] as const;
export type ComponentName = (typeof COMPONENTS)[number];

export type SetStatus = 'complete' | 'partial' | 'failed';
export type PartStatus = 'ok' | 'failed' | 'skipped';

export interface Artifact {
  path: string;
  kind: 'zip' | 'stream';
  size: number;
  sha256: string;
  mode: number;
}

export interface Entry {
  archive: string;
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  sha256: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: string;
  linkTarget: string;
}

export interface Part {
  node: string;
  component: string;
  status: PartStatus;
  reason: string;
  durationMs: number;
  bytes: number;
  meta: Record<string, string>;
  artifacts: Artifact[];
  entries: Entry[];
}

export interface Manifest {
  format: string;
  id: string;
  status: SetStatus;
  reasons: string[];
  startedAt: string;
  finishedAt: string;
  buildDir: string;
  coordinatorVersion: string;
  nodes: Record<string, { address: string }>;
  notCovered: string[];
  parts: Part[];
}

const ID_RE = /^\d{8}T\d{6}Z$/;

export function newSetId(now = new Date()): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function checkSetId(id: string): string {
  if (!ID_RE.test(id)) throw new InputError(`backup id '${id}' is not an id of the form YYYYMMDDTHHMMSSZ`);
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

export async function writeManifest(dir: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
}

/** Reads a set's manifest; `undefined` when the set is incomplete (no manifest yet). */
export async function readManifestIfAny(target: string, id: string): Promise<Manifest | undefined> {
  const dir = setDir(target, id);
  let text: string;
  try {
    text = await fsp.readFile(path.join(dir, MANIFEST), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (!(await isDir(dir))) throw new NotFoundError(`backup '${id}' not found in ${target}`);
    return undefined;
  }
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new IntegrityError(`manifest of backup '${id}' is not valid JSON: ${path.join(dir, MANIFEST)}`);
  }
  if (m.format !== FORMAT) throw new IntegrityError(`backup '${id}' has format '${m.format}', this lsbackup reads ${FORMAT}`);
  return m;
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
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new InputError(`target '${target}' does not exist`);
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
