import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import type { SetInfo } from '../proto/generated/lsbackup/v1/SetInfo.js';
import { InputError } from '../common/errors.js';
import { MANIFEST, listSetIds, readManifest, readManifestIfAny, setDir, type Manifest } from '../common/manifest.js';
import { checkArtifacts } from '../common/verify.js';

/** A set is named by its directory: that is what restore, prune and delete act on. */
export function setInfoOf(m: Manifest, dirName = m.id): SetInfo {
  return {
    backupId: dirName,
    status: m.status,
    bytes: m.parts.reduce((s, p) => s + p.artifacts.reduce((t, a) => t + a.size, 0), 0),
    files: m.parts.reduce((s, p) => s + p.artifacts.length, 0),
    nodes: [...new Set(m.parts.map((p) => p.node))],
    components: [...new Set(m.parts.map((p) => p.component))],
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    reasons: dirName === m.id ? m.reasons : [...m.reasons, `directory ${dirName} holds the manifest of set ${m.id} (copied or renamed)`],
  };
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
    const manifest = await readManifestIfAny(target, id).catch(() => undefined);
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

/** Recomputes every artifact's size and SHA-256; names each file that is missing or differs. */
export async function verifySet(target: string, id: string, emit: (ev: ProgressEvent) => void): Promise<RunSummary> {
  const m = await readManifest(target, id);
  const total = m.parts.reduce((s, p) => s + p.artifacts.reduce((t, a) => t + a.size, 0), 0);
  let done = 0;
  let last = 0;
  emit({ phase: 'started', backupId: id, bytesTotal: total, message: `verifying ${m.parts.reduce((s, p) => s + p.artifacts.length, 0)} files` });
  const bad = await checkArtifacts(path.join(target, id), m.parts, (n) => {
    done += n;
    if (Date.now() - last > 250) {
      last = Date.now();
      emit({ phase: 'running', backupId: id, bytesDone: done, bytesTotal: total });
    }
  });
  for (const b of bad) emit({ phase: 'failed', backupId: id, message: b });
  return { backupId: id, status: bad.length ? 'failed' : 'ok', reasons: bad, parts: [], notCovered: [], setDir: setDir(target, id) };
}
