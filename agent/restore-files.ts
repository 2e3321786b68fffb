import { lstatSync, promises as fsp, renameSync } from 'node:fs';
import { timeSlicer } from '../common/parallel.js';
import path from 'node:path';
import type { Entry, Part } from '../common/manifest.js';
import { extractVerified, entryNameOf } from '../common/archive.js';
import { extractTree } from '../common/tar-tree.js';
import { extractStoreTree } from '../common/store-tree.js';
import { storeOfSet } from '../common/store.js';
import type { SetOpening } from '../common/set-keys.js';
import { loadEntries } from '../common/entries-file.js';
import { CancelledError, IntegrityError, PermissionError } from '../common/errors.js';
import { finishMetadata } from '../common/final-meta.js';
import { isInside, mkdirPrivate, writeFileAtomic } from '../common/fsutil.js';
import { COMPLETE_MARKER, PARTIAL_SUFFIX, ROLLBACK_DIR, journal } from './recovery.js';
import { run } from '../common/exec.js';
import { buildStagedTree, type StagedTree } from './staged-tree.js';
import { planHardLinks } from '../common/hard-links.js';
import { applyMetaAll } from './file-meta.js';

export { applyMeta } from './file-meta.js';

export interface RestoreFilesArgs {
  setDir: string;
  /** An encrypted set's keys (FORMAT.md "Format 4"), opened with the operator's identity. */
  opening?: SetOpening;
  part: Part;
  backupId: string;
  restorePaths: string[];
  /** Where entries go when not back where they were: archived under `from`, restored under `to`. */
  roots?: RootMapping[];
  stateDir: string;
  dryRun: boolean;
  archive?: string;
  only?: (e: Entry) => boolean;
  /** Sees the new files before anything is replaced; `tree` runs checks against all of them in place. */
  validate?: (staged: Map<string, string>, tree: StagedTree) => Promise<void>;
  onBytes?: (n: number) => void;
  report?: (line: string) => void;
  /** Checked once, just before the first file is replaced: a cancel stops there or not at all. */
  signal?: AbortSignal;
}

/** Entries archived under `from` are restored to the same place under `to`; a restore in place maps each root to itself. */
export interface RootMapping {
  from: string;
  to: string;
}

/** Refuses any entry that would write outside the destination roots (zip slip); gives where each entry goes. */
export function checkConfinement(entries: Entry[], roots: RootMapping[]): Map<Entry, string> {
  const resolved = roots.map((r) => ({ from: path.resolve(r.from), to: path.resolve(r.to) }));
  const destinations = new Map<Entry, string>();
  for (const e of entries) {
    const p = e.path;
    if (!path.isAbsolute(p) || path.normalize(p) !== p || p.split('/').includes('..')) {
      throw new PermissionError(`refusing entry '${p}': not a plain absolute path`);
    }
    if (e.name !== entryNameOf(p) || e.name.split('/').includes('..')) {
      throw new PermissionError(`refusing entry '${e.name}': its name does not match its path ${p}`);
    }
    const root = resolved.find((r) => isInside(r.from, p));
    if (!root) throw new PermissionError(`refusing entry '${p}': outside the component's paths ${roots.map((r) => r.from).join(', ')}`);
    const dest = path.join(root.to, path.relative(root.from, p));
    if (e.type === 'symlink') {
      const target = path.resolve(path.dirname(dest), e.linkTarget);
      if (!resolved.some((r) => isInside(r.to, target))) {
        throw new PermissionError(`refusing symlink '${p}' -> '${e.linkTarget}': it points outside ${roots.map((r) => r.to).join(', ')}`);
      }
    }
    destinations.set(e, dest);
  }
  return destinations;
}

/** Resolves symlinks in everything but the last component: where a write to `p` really lands. */
async function realTarget(p: string): Promise<string> {
  const dir = await fsp.realpath(path.dirname(p)).catch(() => path.dirname(p));
  return path.join(dir, path.basename(p));
}

/** A file about to be written must not land outside the roots through a symlinked directory. */
async function checkRealTarget(p: string, roots: string[], realRoots?: string[]): Promise<void> {
  const real = await realTarget(p);
  realRoots ??= await Promise.all(roots.map((r) => realTarget(path.resolve(r))));
  if (!realRoots.some((r) => isInside(r, real))) {
    throw new PermissionError(`refusing to write ${p}: it resolves to ${real}, outside ${roots.join(', ')}`);
  }
}

/** Under the agent's state_dir: where a part's new files are laid out as a tree for its check. */
export const STAGING_DIR = 'staging';

const depth = (p: string) => p.split('/').length;

/** Directories' recorded mtimes set again, exactly; their ACLs are theirs and stay. */
const putTimesBack = (times: [string, string][]) => finishMetadata(times.map(([path, mtimeNs]) => ({ path, mtimeNs, keepAccessAcl: true, keepDefaultAcl: true })));

/**
 * Restores a part's archived files in place. Order matters for safety: check confinement,
 * extract to temp names beside their destinations (verifying every SHA-256), let the component
 * validate the new files, copy what will be replaced to a rollback directory, and only then
 * rename the new files over the old ones.
 */
export interface RestoredFiles {
  restored: number;
  /** The copy of what was replaced (empty on a dry run). */
  rollbackDir: string;
  /** The restore roots this part wrote into. */
  roots: string[];
  /** A shell command that puts the replaced roots back from rollbackDir. */
  howTo: string;
}

/** Puts each root back as the rollback copy has it; a root that did not exist before is removed. */
function rollbackCommand(rollbackDir: string, roots: string[], existed: Set<string>): string {
  const q = (p: string) => `'${p.replace(/'/g, `'\\''`)}'`;
  return roots.map((r) => (existed.has(r) ? `rm -rf ${q(r)} && cp -a ${q(path.join(rollbackDir, path.resolve(r)))} ${q(r)}` : `rm -rf ${q(r)}`)).join(' && ');
}

/** mtimes of the existing directories a restore writes into (its roots and every directory below them on an entry's path). */
async function recordDirTimes(entries: Entry[], dest: (e: Entry) => string, roots: string[]): Promise<Map<string, string>> {
  const dirs = new Set<string>();
  const resolved = roots.map((r) => path.resolve(r));
  for (const e of entries) {
    const root = resolved.find((r) => isInside(r, dest(e)));
    if (!root) continue;
    for (let d = e.type === 'dir' ? dest(e) : path.dirname(dest(e)); isInside(root, d); d = path.dirname(d)) {
      dirs.add(d);
      if (d === root) break;
    }
  }
  const times = new Map<string, string>();
  // Deepest first: setting a directory's time must come after its children's.
  for (const d of [...dirs].sort((x, y) => depth(y) - depth(x))) {
    const st = await fsp.lstat(d, { bigint: true }).catch(() => undefined);
    if (st?.isDirectory()) times.set(d, String(st.mtimeNs));
  }
  return times;
}

/**
 * Copies the roots the restore will write into, as they are, to the agent's rollback directory.
 * Made under a '.partial' name and renamed when whole: a copy cut short never looks usable, and
 * the next start of the agent removes it (agent/recovery.ts). Roots that do not exist have nothing to copy.
 */
async function makeRollbackCopy(a: RestoreFilesArgs, touched: string[], existed: Set<string>): Promise<string> {
  // Restored to a staging place (Prometheus' snapshot), nothing is replaced: the component keeps its own copy of what it swaps out.
  if (a.roots) return '';
  const rollbackDir = path.join(a.stateDir, ROLLBACK_DIR, `${a.backupId}-${a.part.component}-${Date.now()}`);
  const making = rollbackDir + PARTIAL_SUFFIX;
  try {
    await mkdirPrivate(making);
    for (const r of touched) {
      if (!existed.has(r)) continue;
      const copy = path.join(making, path.resolve(r));
      await fsp.mkdir(path.dirname(copy), { recursive: true, mode: 0o700 });
      await run(['cp', '-a', '--', r, copy]);
    }
    await writeFileAtomic(path.join(making, COMPLETE_MARKER), `${new Date().toISOString()}\n`);
    await fsp.rename(making, rollbackDir);
    return rollbackDir;
  } catch (err) {
    await fsp.rm(making, { recursive: true, force: true });
    throw err;
  }
}

export async function restoreFileSet(a: RestoreFilesArgs): Promise<RestoredFiles> {
  // The whole part: a hard link selected here may hold the data of a name that is not (hard-links.ts).
  const everything = await loadEntries(a.setDir, a.part, undefined, a.opening?.opener);
  const entries = everything.filter((e) => (!a.archive || e.archive === a.archive) && (!a.only || a.only(e)));
  const roots = a.roots ?? a.restorePaths.map((r) => ({ from: r, to: r }));
  const destinations = checkConfinement(entries, roots);
  const dest = (e: Entry) => destinations.get(e)!;
  const rootDirs = roots.map((r) => r.to);
  const archives = [...new Set(entries.map((e) => e.archive))];
  for (const arch of archives) {
    if (!a.part.artifacts.some((x) => x.path === arch)) throw new IntegrityError(`entries refer to ${arch}, which is not an artifact of this part`);
  }
  if (a.dryRun) {
    for (const e of entries) a.report?.(`would restore ${e.type} ${dest(e)}`);
    return { restored: entries.length, rollbackDir: '', roots: [], howTo: '' };
  }

  // Roots that do not exist yet have nothing to roll back to; the directories created below must
  // not make them look as if they did (cp would then copy the staged new files).
  const existed = new Set<string>();
  for (const r of rootDirs) if (await fsp.lstat(r).catch(() => undefined)) existed.add(r);
  const touched = rootDirs.filter((r) => entries.some((e) => isInside(path.resolve(r), dest(e))));
  const dirs = entries.filter((e) => e.type === 'dir').sort((x, y) => depth(x.path) - depth(y.path));
  // Checked before the rollback copy is made: a restore refused here leaves nothing behind.
  const missingDirs: Entry[] = [];
  for (const d of dirs) {
    const st = await fsp.lstat(dest(d)).catch(() => undefined);
    if (st && !st.isDirectory()) throw new IntegrityError(`${dest(d)} exists and is not a directory; move it away first`);
    if (!st) {
      await checkRealTarget(dest(d), rootDirs);
      missingDirs.push(d);
    }
  }
  // Placing temp files beside the live ones changes their directories' mtimes: a refused or
  // cancelled restore puts them back, so that it leaves the node exactly as it found it.
  const dirTimes = await recordDirTimes(entries, dest, touched);
  // Copied before anything is written, so the copy is the node as it was, times of directories included.
  const rollbackDir = await makeRollbackCopy(a, touched, existed);
  const created: string[] = [];
  // Only these are new inodes: a directory that was there keeps whatever ACLs it had beyond the recorded ones.
  const newDirs = new Set(missingDirs.map((d) => dest(d)));

  const tag = `.lsbackup-restore-${a.backupId}`;
  const staged = new Map<string, string>();
  const tempOf = (e: Entry) => path.join(path.dirname(dest(e)), `.${path.basename(dest(e))}${tag}`);
  const cleanup = async () => {
    for (const t of staged.values()) await fsp.rm(t, { force: true });
  };
  /** Nothing was replaced: the temp files, the directories made for them and the rollback copy go, and directory times come back. */
  const undo = async () => {
    await cleanup();
    for (const d of created.sort((x, y) => depth(y) - depth(x))) await fsp.rm(d, { recursive: true, force: true });
    await putTimesBack([...dirTimes].filter(([p]) => !created.some((c) => isInside(c, p))));
    if (rollbackDir) await fsp.rm(rollbackDir, { recursive: true, force: true });
  };
  // Where the temp files go, written down before the first is made: an agent killed from here on
  // finds them at its next start without looking through the node's directories.
  const forget = await journal(a.stateDir, `restore-${a.backupId}-${a.part.component}-${process.pid}-${Date.now()}`, {
    kind: 'restore',
    backupId: a.backupId,
    temps: entries.filter((e) => e.type !== 'dir').map(tempOf),
  });
  try {
    return await placeFiles();
  } finally {
    await cleanup();
    await forget();
  }

  /** The whole part laid out under the state directory, so a check sees every file its config names. */
  async function validateInStagedTree(validate: NonNullable<RestoreFilesArgs['validate']>): Promise<void> {
    const stagingDir = path.join(a.stateDir, STAGING_DIR, `${a.backupId}-${a.part.component}-${process.pid}-${Date.now()}`);
    // Restored somewhere else than where they were (a staging root), the files have no "original paths" to show a check.
    const tree = a.roots ? { files: staged, unavailable: 'the files are restored to a staging place', dispose: async () => undefined } : await buildStagedTree(stagingDir, entries, staged, a.restorePaths);
    try {
      if (tree.unavailable) a.report?.(`warning: checking the new config against the live file system: ${tree.unavailable}`);
      await validate(staged, tree);
    } finally {
      await tree.dispose();
    }
  }

  async function placeFiles(): Promise<RestoredFiles> {
    try {
      for (const d of missingDirs) {
        const first = await fsp.mkdir(dest(d), { recursive: true, mode: 0o700 });
        if (first) created.push(first);
      }
      // Once per directory, before and after it is made: a file lands where its directory really is.
      const realRoots = await Promise.all(rootDirs.map((r) => realTarget(path.resolve(r))));
      // A directory's first file stands for all of its files: they resolve through the same directory.
      const byParent = new Map<string, string>();
      for (const e of entries) if (e.type !== 'dir' && !byParent.has(path.dirname(dest(e)))) byParent.set(path.dirname(dest(e)), dest(e));
      for (const [dir, probe] of byParent) {
        await checkRealTarget(probe, rootDirs, realRoots);
        const first = await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
        if (first) created.push(first);
        await checkRealTarget(probe, rootDirs, realRoots);
      }
      const links = planHardLinks(entries, everything);
      const destFor = (e: Entry) => {
        // A hard-linked file's data goes to whichever of its names this restore selected first.
        const holder = links.holderOf.get(e);
        if (!holder) return undefined;
        const t = tempOf(holder);
        staged.set(holder.path, t);
        return t;
      };
      for (const arch of archives) {
        const allOfArchive = everything.filter((e) => e.archive === arch);
        const kind = a.part.artifacts.find((x) => x.path === arch)!.kind;
        if (kind === 'tree') await extractStoreTree(storeOfSet(a.setDir, a.opening?.codec), allOfArchive, destFor, a.onBytes);
        else if (kind === 'tar') await extractTree(path.join(a.setDir, arch), allOfArchive, destFor, a.onBytes);
        else await extractVerified(path.join(a.setDir, arch), allOfArchive, destFor, a.onBytes);
      }
      for (const { member, holder } of links.links) {
        const t = tempOf(member);
        await fsp.rm(t, { force: true });
        await fsp.link(tempOf(holder), t);
        staged.set(member.path, t);
      }
      for (const e of entries) {
        if (e.type !== 'symlink') continue;
        const t = tempOf(e);
        await fsp.rm(t, { force: true });
        await fsp.symlink(e.linkTarget, t);
        staged.set(e.path, t);
      }
      if (a.validate) await validateInStagedTree(a.validate);
      // The last point at which a cancel leaves the old state: from here on every file is renamed into place.
      if (a.signal?.aborted) throw new CancelledError(`cancelled before anything of ${a.part.node}/${a.part.component} was replaced: the node has its old files`);
    } catch (err) {
      await undo();
      throw err;
    }

    const files = entries.filter((e) => e.type !== 'dir');
    // A rename keeps the file's own times: all of it is set on the staged names, in one go.
    await applyMetaAll(files.map((e) => ({ entry: e, dest: staged.get(e.path)! })), a.report);
    const breathe = timeSlicer();
    for (const e of files) {
      const t = staged.get(e.path)!;
      // Synchronous, as the metadata calls: one call of a few microseconds per file (timeSlicer).
      // A directory where the file goes (the tree changed since the backup) is the rare case: found by the rename itself.
      try {
        renameSync(t, dest(e));
      } catch (err) {
        if (!['EISDIR', 'ENOTEMPTY', 'EEXIST'].includes((err as NodeJS.ErrnoException).code ?? '') || !lstatSync(dest(e), { throwIfNoEntry: false })?.isDirectory()) throw err;
        await fsp.rm(dest(e), { recursive: true });
        renameSync(t, dest(e));
      }
      staged.delete(e.path);
      await breathe();
    }
    // Directories last and deepest first: writing into a directory changes its mtime.
    await applyMetaAll([...dirs].reverse().map((d) => ({ entry: d, dest: dest(d), existed: !newDirs.has(dest(d)) })), a.report);
    // Directories on the way that are not the part's own (a restore of some entries only) keep the times they had.
    const own = new Set(dirs.map((d) => dest(d)));
    await putTimesBack([...dirTimes].filter(([p]) => !own.has(p)));
    return { restored: entries.length, rollbackDir, roots: touched, howTo: rollbackCommand(rollbackDir, touched, existed) };
  }
}
