import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { messageOf } from '../common/errors.js';
import { mkdirPrivate, writeFileAtomic } from '../common/fsutil.js';
import { COMPLETE_MARKER, PARTIAL_SUFFIX, ROLLBACK_DIR } from './recovery.js';

/**
 * What a restore replaced is kept as a rollback copy under the agent's state_dir, never inside the
 * component's own directories (a TSDB would otherwise carry its old blocks until someone noticed).
 * Copies are removed by one rule, not by hand: older than `keepDays`, except the newest copy of
 * each component, which stays until a newer restore of that component replaces it.
 *
 * A copy that must be a rename to stay cheap (a TSDB of hundreds of GiB) but whose data is on
 * another file system than state_dir is left beside the data, and a pointer file under state_dir
 * (`<name>.elsewhere`, holding its path) makes it subject to the same rule.
 */
export const POINTER_SUFFIX = '.elsewhere';

/** agent.yaml's rollback_keep_days when it has none. */
export const DEFAULT_ROLLBACK_KEEP_DAYS = 7;

export function rollbackRoot(stateDir: string): string {
  return path.join(stateDir, ROLLBACK_DIR);
}

/** `<backup id>-<component>-<ms>`: the component and the time are read back from the name. */
export function rollbackName(backupId: string, component: string, at = Date.now()): string {
  return `${backupId}-${component}-${at}`;
}

interface Copy {
  name: string;
  component: string;
  at: number;
  /** Where the copy's files are: under state_dir, or where its pointer says. */
  dir: string;
  pointer?: string;
}

function parseName(name: string): { component: string; at: number } | undefined {
  const m = /^\d{8}T\d{6}Z-([a-z]+)-(\d+)$/.exec(name);
  return m ? { component: m[1]!, at: Number(m[2]) } : undefined;
}

async function listCopies(stateDir: string): Promise<Copy[]> {
  const root = rollbackRoot(stateDir);
  const out: Copy[] = [];
  for (const n of await fsp.readdir(root).catch(() => [] as string[])) {
    if (n.endsWith(PARTIAL_SUFFIX)) continue;
    const base = n.endsWith(POINTER_SUFFIX) ? n.slice(0, -POINTER_SUFFIX.length) : n;
    const parsed = parseName(base);
    if (!parsed) continue;
    if (n.endsWith(POINTER_SUFFIX)) {
      const dir = (await fsp.readFile(path.join(root, n), 'utf8').catch(() => '')).trim();
      out.push({ name: base, ...parsed, dir, pointer: path.join(root, n) });
    } else out.push({ name: base, ...parsed, dir: path.join(root, n) });
  }
  return out;
}

/**
 * A directory to move replaced data into by rename: under state_dir when it is on the same file
 * system as `near`, else beside `near` with a pointer under state_dir. Marked complete by `seal`.
 */
export async function renameTarget(stateDir: string, near: string, name: string): Promise<{ dir: string; seal: () => Promise<void>; discard: () => Promise<void> }> {
  const root = rollbackRoot(stateDir);
  await mkdirPrivate(root);
  const [a, b] = await Promise.all([fsp.stat(root), fsp.stat(near)]);
  const sameFs = a.dev === b.dev;
  const dir = sameFs ? path.join(root, name) : path.join(near, `.lsbackup-rollback-${name}`);
  const pointer = sameFs ? undefined : path.join(root, name + POINTER_SUFFIX);
  await mkdirPrivate(dir);
  if (pointer) await writeFileAtomic(pointer, `${dir}\n`);
  return {
    dir,
    seal: () => writeFileAtomic(path.join(dir, COMPLETE_MARKER), `${new Date().toISOString()}\n`),
    discard: async () => {
      await fsp.rm(dir, { recursive: true, force: true });
      if (pointer) await fsp.rm(pointer, { force: true });
    },
  };
}

/** Applies the keep rule; returns what it removed. Never throws: a copy it cannot remove is logged. */
export async function pruneRollbacks(stateDir: string, keepDays: number, log: Logger, now = Date.now()): Promise<string[]> {
  const copies = await listCopies(stateDir);
  const newest = new Map<string, number>();
  for (const c of copies) newest.set(c.component, Math.max(newest.get(c.component) ?? 0, c.at));
  const removed: string[] = [];
  for (const c of copies) {
    if (c.at === newest.get(c.component) || now - c.at < keepDays * 86_400_000) continue;
    try {
      if (c.dir) await fsp.rm(c.dir, { recursive: true, force: true });
      if (c.pointer) await fsp.rm(c.pointer, { force: true });
      removed.push(c.dir);
    } catch (err) {
      log.warn(`could not remove the old rollback copy ${c.dir}: ${messageOf(err)}`);
    }
  }
  if (removed.length) log.info(`removed ${removed.length} rollback cop${removed.length === 1 ? 'y' : 'ies'} older than ${keepDays} days: ${removed.join(', ')}`);
  return removed;
}
