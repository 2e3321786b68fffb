import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import { messageOf } from './errors.js';
import { readPartRecord } from './part-record.js';
import { setStatusOf, writeManifest, type Manifest, type Part, type SetFormat } from './manifest.js';

export const VERSION = '0.1.0';

/**
 * The part an agent answered for, as its record on the shared location has it (FORMAT.md
 * "Format 2"). An answer without a record, or whose record is missing, differs or is malformed,
 * is a failed part whose reason names the file: nothing the agent did not durably write is believed.
 */
export async function partFromAnswer(setDir: string, r: ComponentResult): Promise<Part> {
  const failed = (reason: string): Part => ({ node: r.node, component: r.component, status: 'failed', reason, durationMs: Number(r.durationMs), bytes: 0, meta: { ...r.meta }, artifacts: [], entryCount: 0, ...(r.external?.length ? { external: r.external.map((x) => ({ key: x.key, what: x.what, byHand: x.byHand })) } : {}) });
  if (!r.record) return failed(r.status === 'failed' ? r.reason : `${r.node} answered ${r.status} without a part record (an agent older than format 2?)`);
  try {
    const part = await readPartRecord(setDir, { path: r.record.path, size: Number(r.record.size), sha256: r.record.sha256 }, r);
    if (part.status !== r.status) return failed(`${r.record.path} says ${part.status}, the agent answered ${r.status}`);
    // Only when there is some: a part without the key is one that holds nothing outside (FORMAT.md 1.3).
    if (part.external?.length === 0) delete part.external;
    return part;
  } catch (err) {
    return failed(`${r.status === 'failed' ? `${r.reason}; ` : ''}${messageOf(err)}`);
  }
}

/**
 * Commits a set: the manifest goes in last, atomically, with the set's status derived from its
 * parts. Until this returns the set is incomplete and nothing restores it by default.
 */
export async function commitSet(
  dir: string,
  format: SetFormat,
  base: Omit<Manifest, 'format' | 'status' | 'reasons' | 'finishedAt' | 'parts' | 'coordinatorVersion'>,
  parts: Part[],
  extraReasons: string[] = [],
  /** Format 4: the key's idKey, for the manifest's MAC. */
  idKey?: Buffer,
): Promise<Manifest> {
  const reasons = [...parts.filter((p) => p.status === 'failed').map((p) => `${p.node}/${p.component}: ${p.reason}`), ...extraReasons];
  let status = setStatusOf(parts);
  if (extraReasons.length > 0 && status === 'complete') status = 'partial';
  const manifest: Manifest = { format, ...base, coordinatorVersion: VERSION, status, reasons, finishedAt: new Date().toISOString(), parts };
  await writeManifest(dir, manifest, idKey);
  return manifest;
}
