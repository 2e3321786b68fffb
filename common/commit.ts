import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import { entryFromWire } from './entry-wire.js';
import { FORMAT, setStatusOf, writeManifest, type Manifest, type Part, type PartStatus } from './manifest.js';

export const VERSION = '0.1.0';

export function partOf(r: ComponentResult): Part {
  return {
    node: r.node,
    component: r.component,
    status: (['ok', 'failed', 'skipped'].includes(r.status) ? r.status : 'failed') as PartStatus,
    reason: r.reason,
    durationMs: Number(r.durationMs),
    bytes: Number(r.bytes),
    meta: { ...r.meta },
    artifacts: r.artifacts.map((a) => ({ path: a.path, kind: a.kind === 'zip' ? 'zip' : 'stream', size: Number(a.size), sha256: a.sha256, mode: a.mode })),
    entries: r.entries.map(entryFromWire),
    // Only when there is some: a part without the key is one that holds nothing outside (FORMAT.md 1.3).
    ...(r.external?.length ? { external: r.external.map((x) => ({ key: x.key, what: x.what, byHand: x.byHand })) } : {}),
  };
}

/**
 * Commits a set: the manifest goes in last, atomically, with the set's status derived from its
 * parts. Until this returns the set is incomplete and nothing restores it by default.
 */
export async function commitSet(
  dir: string,
  base: Omit<Manifest, 'format' | 'status' | 'reasons' | 'finishedAt' | 'parts' | 'coordinatorVersion'>,
  parts: Part[],
  extraReasons: string[] = [],
): Promise<Manifest> {
  const reasons = [...parts.filter((p) => p.status === 'failed').map((p) => `${p.node}/${p.component}: ${p.reason}`), ...extraReasons];
  let status = setStatusOf(parts);
  if (extraReasons.length > 0 && status === 'complete') status = 'partial';
  const manifest: Manifest = { format: FORMAT, ...base, coordinatorVersion: VERSION, status, reasons, finishedAt: new Date().toISOString(), parts };
  await writeManifest(dir, manifest);
  return manifest;
}
