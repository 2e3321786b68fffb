import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { PruneRequest__Output as PruneRequest } from '../proto/generated/lsbackup/v1/PruneRequest.js';
import type { PruneReply } from '../proto/generated/lsbackup/v1/PruneReply.js';
import { InputError, NotFoundError } from '../common/errors.js';
import { acquireLock } from '../common/lock.js';
import { MANIFEST, checkSetId, listSetIds, setDir } from '../common/manifest.js';
import { TARGET_LOCK } from './backup.js';
import { listSets } from './sets.js';

interface Candidate {
  id: string;
  status: string;
  time: Date;
}

const dayKey = (d: Date) => d.toISOString().slice(0, 10);
const monthKey = (d: Date) => d.toISOString().slice(0, 7);
function weekKey(d: Date): string {
  // ISO week: the Thursday of the week decides its year.
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  t.setUTCDate(t.getUTCDate() + 3 - ((t.getUTCDay() + 6) % 7));
  const jan4 = new Date(Date.UTC(t.getUTCFullYear(), 0, 4));
  const week = 1 + Math.round(((t.getTime() - jan4.getTime()) / 86_400_000 - 3 + ((jan4.getUTCDay() + 6) % 7)) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}

function timeOfId(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(id)!;
  return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
}

/** Which complete sets a restic-style policy keeps, newest first, with the rule that keeps each. */
export function retain(complete: Candidate[], policy: { last: number; daily: number; weekly: number; monthly: number }): Map<string, string> {
  const keep = new Map<string, string>();
  const sorted = [...complete].sort((a, b) => b.id.localeCompare(a.id));
  sorted.slice(0, policy.last).forEach((c) => keep.set(c.id, 'last'));
  const bucket = (n: number, key: (d: Date) => string, rule: string) => {
    const seen = new Set<string>();
    for (const c of sorted) {
      if (seen.size >= n) break;
      const k = key(c.time);
      if (seen.has(k)) continue;
      seen.add(k);
      if (!keep.has(c.id)) keep.set(c.id, rule);
    }
  };
  bucket(policy.daily, dayKey, 'daily');
  bucket(policy.weekly, weekKey, 'weekly');
  bucket(policy.monthly, monthKey, 'monthly');
  // The newest complete set is what a restore needs most; no policy removes it.
  if (sorted[0] && !keep.has(sorted[0].id)) keep.set(sorted[0].id, 'newest complete');
  return keep;
}

/** Removes a set so that at no point does a half-deleted set look complete: the manifest goes first. */
async function removeSet(target: string, id: string): Promise<void> {
  const dir = setDir(target, id);
  await fsp.rm(path.join(dir, MANIFEST), { force: true });
  await fsp.rm(dir, { recursive: true, force: true });
}

export async function prune(req: PruneRequest, now = new Date()): Promise<PruneReply> {
  const policy = { last: req.keepLast, daily: req.keepDaily, weekly: req.keepWeekly, monthly: req.keepMonthly };
  const byPolicy = Object.values(policy).some((n) => n > 0);
  if (!byPolicy && req.removeIds.length === 0) throw new InputError('prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly');
  if (Object.values(policy).some((n) => n < 0)) throw new InputError('--keep-* values must be 0 or more');
  const graceMs = (req.incompleteGraceHours > 0 ? req.incompleteGraceHours : 24) * 3_600_000;

  await listSetIds(req.target); // names a missing target before the lock file would
  const release = req.dryRun ? async () => undefined : await acquireLock(path.join(req.target, TARGET_LOCK), 'prune');
  try {
    const sets = (await listSets(req.target)).map((s) => ({ id: s.backupId!, status: s.status!, time: timeOfId(s.backupId!) }));
    const removed: string[] = [];
    const kept: string[] = [];
    const reasons: string[] = [];
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
      else if (s.status === 'incomplete') why = now.getTime() - s.time.getTime() > graceMs ? 'incomplete and older than the grace period' : undefined;
      else if (s.status !== 'complete') why = newestComplete && s.id < newestComplete ? `${s.status} and older than the newest complete set` : undefined;
      else if (!keep.has(s.id)) why = 'not kept by any --keep rule';
      if (why === 'named for removal' && s.id === newestComplete && byPolicy) why = undefined;
      if (why) {
        removed.push(s.id);
        reasons.push(`${s.id}: ${why}`);
        if (!req.dryRun) await removeSet(req.target, s.id);
      } else {
        kept.push(s.id);
        reasons.push(`${s.id}: kept (${keep.get(s.id) ?? (s.status === 'incomplete' ? 'incomplete, within the grace period' : s.status)})`);
      }
    }
    return { removed, kept, reasons };
  } finally {
    await release();
  }
}
