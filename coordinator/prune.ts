import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { PruneRequest__Output as PruneRequest } from '../proto/generated/lsbackup/v1/PruneRequest.js';
import type { PruneReply } from '../proto/generated/lsbackup/v1/PruneReply.js';
import { InputError, NotFoundError, messageOf } from '../common/errors.js';
import { MANIFEST, checkSetId, listSetIds, setDir, type Manifest } from '../common/manifest.js';
import type { AgentPool } from './agents.js';
import { holdingsOf, releaseHolding } from './release.js';
import { retain } from './retention.js';
import { readSets } from './sets.js';
import { timeOfId } from './set-time.js';
import { collectGarbage, storeLine } from './store-gc.js';
import { lockTarget } from './target.js';

/** Removes a set so that at no point does a half-deleted set look complete: the manifest goes first. */
async function removeSetDir(target: string, id: string): Promise<void> {
  const dir = setDir(target, id);
  await fsp.rm(path.join(dir, MANIFEST), { force: true });
  await fsp.rm(dir, { recursive: true, force: true });
}

/**
 * Removes a set after what it keeps outside its directory (its Elasticsearch snapshot) is
 * released. When that cannot be done (agent unreachable, cluster down) the set stays and says
 * why: removing it anyway would lose the only record of the snapshot, and the repository would
 * grow with nobody told; kept, it is retried by every later prune until its data is released.
 * Data a set that stays also names (a copied set) is left to that set.
 */
async function removeSet(pool: AgentPool, req: PruneRequest, id: string, why: string, m: Manifest | undefined, usedBy: Map<string, string>): Promise<{ removed: boolean; line: string }> {
  const holdings = holdingsOf(m);
  const own = holdings.filter((h) => !usedBy.has(h.data.key));
  const shared = holdings.filter((h) => usedBy.has(h.data.key)).map((h) => `${h.data.what} stays: set ${usedBy.get(h.data.key)} uses it too`);
  if (req.dryRun) return { removed: true, line: [`${id}: ${why}`, ...own.map((h) => `would delete ${h.data.what}`), ...shared].join('; ') };
  const outcomes = await Promise.all(own.map((h) => releaseHolding(pool, req.target, id, m?.nodes ?? {}, h)));
  const lines = outcomes.map((o) => o.line);
  if (outcomes.some((o) => !o.released)) return { removed: false, line: `${id}: ${why}, but not removed: ${lines.join('; ')}` };
  await removeSetDir(req.target, id);
  return { removed: true, line: [`${id}: ${why}`, ...lines, ...shared].join('; ') };
}

export interface PruneOptions {
  /** The store's grace period (FORMAT.md "Garbage collection"): coordinator config `store_grace_s`. */
  storeGraceMs: number;
  now?: Date;
  log?: (line: string) => void;
}

export async function prune(req: PruneRequest, pool: AgentPool, opts: PruneOptions): Promise<PruneReply> {
  const now = opts.now ?? new Date();
  const policy = { last: req.keepLast, daily: req.keepDaily, weekly: req.keepWeekly, monthly: req.keepMonthly };
  const byPolicy = Object.values(policy).some((n) => n > 0);
  if (!byPolicy && req.removeIds.length === 0) throw new InputError('prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly');
  if (Object.values(policy).some((n) => n < 0)) throw new InputError('--keep-* values must be 0 or more');
  const graceMs = (req.incompleteGraceHours > 0 ? req.incompleteGraceHours : 24) * 3_600_000;

  await listSetIds(req.target); // names a missing target before the lock file would
  const unlock = req.dryRun ? async () => undefined : await lockTarget(req.target, 'prune');
  try {
    const sets = (await readSets(req.target)).map(({ info, manifest }) => ({ id: info.backupId!, status: info.status!, reason: info.reasons?.[0] ?? '', time: timeOfId(info.backupId!), manifest }));
    const removed: string[] = [];
    const kept: string[] = [];
    const held: string[] = [];
    const reasons = new Map<string, string>();
    const doomed: { id: string; why: string; manifest?: Manifest }[] = [];
    const ids = new Set(sets.map((s) => s.id));
    for (const id of req.removeIds) {
      checkSetId(id);
      if (!ids.has(id)) throw new NotFoundError(`backup '${id}' not found in ${req.target}`);
    }
    const complete = sets.filter((s) => s.status === 'complete');
    const newestComplete = complete.map((s) => s.id).sort().at(-1);
    const keep = byPolicy ? retain(complete, policy) : new Map(sets.map((s) => [s.id, 'not named'] as [string, string]));
    for (const s of sets) {
      let why: string | undefined;
      if (req.removeIds.includes(s.id)) why = 'named for removal';
      else if (!byPolicy) why = undefined;
      // Nothing of a corrupt manifest is believed, not even what it keeps outside the set (a
      // snapshot); only the operator's delete removes it.
      else if (s.status === 'corrupt') why = undefined;
      else if (s.status === 'incomplete') why = now.getTime() - s.time.getTime() > graceMs ? 'incomplete and older than the grace period' : undefined;
      else if (s.status !== 'complete') why = newestComplete && s.id < newestComplete ? `${s.status} and older than the newest complete set` : undefined;
      else if (!keep.has(s.id)) why = 'not kept by any --keep rule';
      if (why === 'named for removal' && s.id === newestComplete && byPolicy) why = undefined;
      if (why) {
        doomed.push({ id: s.id, why, manifest: s.manifest });
      } else {
        kept.push(s.id);
        const corrupt = s.status === 'corrupt' ? `corrupt: ${s.reason}; 'lsbackup delete ${s.id}' removes it` : undefined;
        reasons.set(s.id, `${s.id}: kept (${corrupt ?? keep.get(s.id) ?? (s.status === 'incomplete' ? 'incomplete, within the grace period' : s.status)})`);
      }
    }
    const usedBy = new Map<string, string>();
    for (const s of sets.filter((x) => kept.includes(x.id))) for (const h of holdingsOf(s.manifest)) usedBy.set(h.data.key, s.id);
    // One set after another: clusters before Elasticsearch 7.8 refuse a second deletion in a repository.
    for (const d of doomed) {
      const outcome = await removeSet(pool, req, d.id, d.why, d.manifest, usedBy);
      (outcome.removed ? removed : held).push(d.id);
      reasons.set(d.id, outcome.line);
    }
    const lines = sets.map((s) => reasons.get(s.id)!);
    const store = await collectStore(req, opts, now, new Set(req.dryRun ? removed : []));
    return { removed, kept, held, reasons: store ? [...lines, store] : lines };
  } finally {
    await unlock();
  }
}

/**
 * The store's garbage collection after the sets are gone, under the same lock: one line for the
 * reply, none when the target has no store. The sets are removed by then, so a failure here is
 * that line rather than a failed prune.
 */
async function collectStore(req: PruneRequest, opts: PruneOptions, now: Date, gone: Set<string>): Promise<string | undefined> {
  try {
    const r = await collectGarbage(req.target, { graceMs: opts.storeGraceMs, dryRun: req.dryRun, now, log: opts.log, gone });
    return r.noStore ? undefined : storeLine(r, req.dryRun);
  } catch (err) {
    return `store: collection stopped: ${messageOf(err)}`;
  }
}
