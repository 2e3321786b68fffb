import { FORMAT, listSetIds, readManifestIfAny } from '../common/manifest.js';

/**
 * The parent of a new format-3 backup (FORMAT.md "Format 3"): the newest committed set of format 3,
 * complete or partial, whose manifest passes every check. Its lines tell the agents which files
 * they need not read. Sets that cannot be read are passed over: a parent is an optimisation, and
 * every piece it names is looked up again before it is used.
 */
export async function parentSetOf(target: string, before: string): Promise<string> {
  const ids = (await listSetIds(target)).filter((id) => id < before);
  for (const id of ids.reverse()) {
    const m = await readManifestIfAny(target, id).catch(() => undefined);
    if (m && m.format === FORMAT && (m.status === 'complete' || m.status === 'partial')) return id;
  }
  return '';
}
