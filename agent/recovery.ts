/**
 * What an agent killed in the middle of a run leaves behind, and how the next start finds it
 * without scanning the node: every run that creates files outside its own result first writes a
 * journal entry in state_dir saying where, and removes the entry when it is done.
 *
 * - restore: hidden `.<name>.lsbackup-restore-<id>` temp files beside the live files;
 * - backup: artifacts under `<set>/<node>/` that the coordinator never heard of;
 * - rollback copies: made in `<name>.partial` and renamed once complete, so a half copy never
 *   looks usable.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { messageOf } from '../common/errors.js';
import { mkdirPrivate, writeFileAtomic } from '../common/fsutil.js';
import { acquireLock } from '../common/lock.js';
import { MANIFEST, parseManifest } from '../common/manifest.js';

export const JOURNAL_DIR = 'journal';
export const ROLLBACK_DIR = 'rollback';
/** Suffix of a rollback copy still being made. */
export const PARTIAL_SUFFIX = '.partial';
/** Written inside a rollback copy last, just before it gets its final name. */
export const COMPLETE_MARKER = '.lsbackup-complete';

export type JournalEntry =
  | { kind: 'restore'; backupId: string; temps: string[] }
  | { kind: 'backup'; backupId: string; setDir: string; node: string };

const TEMP_RE = /^\..+\.lsbackup-restore-\d{8}T\d{6}Z$/;

/** Records a run's leftovers-to-be before it makes any; the returned function forgets it. */
export async function journal(stateDir: string, name: string, entry: JournalEntry): Promise<() => Promise<void>> {
  const dir = path.join(stateDir, JOURNAL_DIR);
  await mkdirPrivate(dir);
  const file = path.join(dir, `${name}.json`);
  await writeFileAtomic(file, JSON.stringify(entry));
  return async () => {
    await fsp.rm(file, { force: true });
  };
}

async function readEntries(stateDir: string): Promise<{ file: string; entry: JournalEntry | undefined }[]> {
  const dir = path.join(stateDir, JOURNAL_DIR);
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const out: { file: string; entry: JournalEntry | undefined }[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    const file = path.join(dir, n);
    try {
      out.push({ file, entry: JSON.parse(await fsp.readFile(file, 'utf8')) as JournalEntry });
    } catch {
      out.push({ file, entry: undefined });
    }
  }
  return out;
}

/** Removes the temp files a killed restore left beside the live files; only names a restore makes. */
async function cleanRestore(e: Extract<JournalEntry, { kind: 'restore' }>): Promise<string[]> {
  const removed: string[] = [];
  for (const t of e.temps) {
    if (!path.isAbsolute(t) || !TEMP_RE.test(path.basename(t)) || !path.basename(t).endsWith(`.lsbackup-restore-${e.backupId}`)) continue;
    const st = await fsp.lstat(t).catch(() => undefined);
    if (!st || st.isDirectory()) continue;
    await fsp.rm(t, { force: true });
    removed.push(t);
  }
  return removed;
}

/**
 * Removes what a killed backup wrote under `<set>/<node>/` that the committed manifest does not
 * list. Until the set has a manifest the coordinator may still be committing it: keep waiting.
 * Returns undefined while that is so.
 */
async function cleanBackup(e: Extract<JournalEntry, { kind: 'backup' }>): Promise<string[] | undefined> {
  const nodeDir = path.join(e.setDir, e.node);
  if (!(await fsp.stat(e.setDir).catch(() => undefined))) return []; // pruned or deleted since
  let text: string;
  try {
    text = await fsp.readFile(path.join(e.setDir, MANIFEST), 'utf8');
  } catch {
    return undefined;
  }
  // An unreadable manifest is for the operator to look at: touch nothing in that set.
  const manifest = parseManifest(text, path.join(e.setDir, MANIFEST));
  const listed = new Set(manifest.parts.flatMap((p) => [...p.artifacts.map((a) => a.path), ...(p.record ? [p.record.path] : [])].map((rel) => path.join(e.setDir, rel))));
  const removed: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const d of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(dir, d.name);
      if (d.isDirectory()) {
        await walk(p);
        if ((await fsp.readdir(p)).length === 0) await fsp.rmdir(p);
      } else if (!listed.has(p)) {
        await fsp.rm(p, { force: true });
        removed.push(p);
      }
    }
  };
  await walk(nodeDir);
  return removed;
}

/** Rollback copies whose making was interrupted: they hold part of what was there, never all of it. */
async function cleanRollbacks(stateDir: string): Promise<string[]> {
  const dir = path.join(stateDir, ROLLBACK_DIR);
  const removed: string[] = [];
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!n.endsWith(PARTIAL_SUFFIX)) continue;
    await fsp.rm(path.join(dir, n), { recursive: true, force: true });
    removed.push(path.join(dir, n));
  }
  return removed;
}

/** Cleans up after runs that did not end (the agent was killed): at start, and before each backup. */
export async function recoverAfterCrash(stateDir: string, log: Logger, opts: { rollbacks: boolean }): Promise<void> {
  for (const { file, entry } of await readEntries(stateDir)) {
    try {
      if (!entry) {
        log.warn(`journal entry ${file} is unreadable; removed`);
        await fsp.rm(file, { force: true });
        continue;
      }
      const removed = entry.kind === 'restore' ? await cleanRestore(entry) : await cleanBackup(entry);
      if (removed === undefined) continue;
      if (removed.length) log.warn(`an interrupted ${entry.kind} of ${entry.backupId} left ${removed.length} file(s); removed: ${removed.join(', ')}`, { backupId: entry.backupId });
      await fsp.rm(file, { force: true });
    } catch (err) {
      log.error(`could not clean up after the interrupted run in ${file}: ${messageOf(err)}`);
    }
  }
  // An encrypted set's streams a killed restore had decrypted (runner.ts openParts): plaintext that must not stay.
  for (const name of await fsp.readdir(stateDir).catch(() => [] as string[])) {
    if (!name.startsWith('opened-')) continue;
    await fsp.rm(path.join(stateDir, name), { recursive: true, force: true });
    log.warn(`removed ${name}: the decrypted streams of an interrupted restore of an encrypted set`);
  }
  if (opts.rollbacks) {
    for (const r of await cleanRollbacks(stateDir)) log.warn(`removed the rollback copy ${r}: an interrupted restore was making it, and it is incomplete (the live files were not replaced yet)`);
  }
}

/** At the agent's start, under its lock: another agent on the same state_dir is left alone. */
export async function recoverAtStart(stateDir: string, log: Logger): Promise<void> {
  let release: () => Promise<void>;
  try {
    release = await acquireLock(path.join(stateDir, 'agent.lock'), 'clean-up after an interrupted run');
  } catch (err) {
    log.warn(`not cleaning up after interrupted runs: ${messageOf(err)}`);
    return;
  }
  try {
    await recoverAfterCrash(stateDir, log, { rollbacks: true });
  } finally {
    await release();
  }
}
