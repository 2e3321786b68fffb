/**
 * The retention policy of prune, alone: which complete sets --keep-last/-daily/-weekly/-monthly
 * keep, as restic's forget does. It reads no files, so it is tested on its own.
 */
/** A complete set as the policy sees it: its id (which sorts by time) and its time. */
export interface Candidate {
  id: string;
  status: string;
  time: Date;
}

export const dayKey = (d: Date) => d.toISOString().slice(0, 10);
export const monthKey = (d: Date) => d.toISOString().slice(0, 7);
export function weekKey(d: Date): string {
  // ISO week: the Thursday of the week decides its year.
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  t.setUTCDate(t.getUTCDate() + 3 - ((t.getUTCDay() + 6) % 7));
  const jan4 = new Date(Date.UTC(t.getUTCFullYear(), 0, 4));
  const week = 1 + Math.round(((t.getTime() - jan4.getTime()) / 86_400_000 - 3 + ((jan4.getUTCDay() + 6) % 7)) / 7);
  return `${t.getUTCFullYear()}-W${week}`;
}

export interface Policy {
  last: number;
  daily: number;
  weekly: number;
  monthly: number;
}

/** Which complete sets a restic-style policy keeps, newest first, with the rule that keeps each. */
export function retain(complete: Candidate[], policy: Policy): Map<string, string> {
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
