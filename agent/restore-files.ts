import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Entry, Part } from '../common/manifest.js';
import { extractVerified, entryNameOf } from '../common/archive.js';
import { IntegrityError, PermissionError } from '../common/errors.js';
import { isInside, mkdirPrivate, writeFileAtomic } from '../common/fsutil.js';
import { COMPLETE_MARKER, PARTIAL_SUFFIX, ROLLBACK_DIR, journal } from './recovery.js';
import { run } from '../common/exec.js';
import { planHardLinks } from '../common/hard-links.js';
import { applyMetaAll } from './file-meta.js';

export { applyMeta } from './file-meta.js';

export interface RestoreFilesArgs {
  setDir: string;
  part: Part;
  backupId: string;
  restorePaths: string[];
  stateDir: string;
  dryRun: boolean;
  archive?: string;
  only?: (e: Entry) => boolean;
  validate?: (staged: Map<string, string>) => Promise<void>;
  onBytes?: (n: number) => void;
  report?: (line: string) => void;
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
async function checkRealTarget(p: string, roots: string[]): Promise<void> {
  const real = await realTarget(p);
  const realRoots = await Promise.all(roots.map((r) => realTarget(path.resolve(r))));
  if (!realRoots.some((r) => isInside(r, real))) {
    throw new PermissionError(`refusing to write ${p}: it resolves to ${real}, outside ${roots.join(', ')}`);
  }
}

const depth = (p: string) => p.split('/').length;

/**
 * Restores a part's archived files in place. Order matters for safety: check confinement,
 * extract to temp names beside their destinations (verifying every SHA-256), let the component
 * validate the new files, copy what will be replaced to a rollback directory, and only then
 * rename the new files over the old ones.
 */
export async function restoreFileSet(a: RestoreFilesArgs): Promise<{ restored: number; rollbackDir: string }> {
  const entries = a.part.entries.filter((e) => (!a.archive || e.archive === a.archive) && (!a.only || a.only(e)));
  checkConfinement(entries, a.restorePaths.map((r) => ({ from: r, to: r })));
  const archives = [...new Set(entries.map((e) => e.archive))];
  for (const arch of archives) {
    if (!a.part.artifacts.some((x) => x.path === arch)) throw new IntegrityError(`entries refer to ${arch}, which is not an artifact of this part`);
  }
  if (a.dryRun) {
    for (const e of entries) a.report?.(`would restore ${e.type} ${e.path}`);
    return { restored: entries.length, rollbackDir: '' };
  }

  // Roots that do not exist yet have nothing to roll back to; the directories created below must
  // not make them look as if they did (cp would then copy the staged new files).
  const existed = new Set<string>();
  for (const r of a.restorePaths) if (await fsp.lstat(r).catch(() => undefined)) existed.add(r);

  const dirs = entries.filter((e) => e.type === 'dir').sort((x, y) => depth(x.path) - depth(y.path));
  // Only these are new inodes: a directory that was there keeps whatever ACLs it had beyond the recorded ones.
  const created = new Set<string>();
  for (const d of dirs) {
    const st = await fsp.lstat(d.path).catch(() => undefined);
    if (st && !st.isDirectory()) throw new IntegrityError(`${d.path} exists and is not a directory; move it away first`);
    if (!st) {
      await checkRealTarget(d.path, a.restorePaths);
      await fsp.mkdir(d.path, { recursive: true, mode: 0o700 });
      created.add(d.path);
    }
  }

  const tag = `.lsbackup-restore-${a.backupId}`;
  const staged = new Map<string, string>();
  const tempOf = (e: Entry) => path.join(path.dirname(e.path), `.${path.basename(e.path)}${tag}`);
  const cleanup = async () => {
    for (const t of staged.values()) await fsp.rm(t, { force: true });
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

  async function placeFiles(): Promise<{ restored: number; rollbackDir: string }> {
    try {
      for (const e of entries) {
        if (e.type === 'dir') continue;
        await checkRealTarget(e.path, a.restorePaths);
        await fsp.mkdir(path.dirname(e.path), { recursive: true, mode: 0o700 });
        await checkRealTarget(e.path, a.restorePaths);
      }
      const links = planHardLinks(entries, a.part.entries);
      for (const arch of archives) {
        const allOfArchive = a.part.entries.filter((e) => e.archive === arch);
        await extractVerified(
          path.join(a.setDir, arch),
          allOfArchive,
          (e) => {
            // A hard-linked file's data goes to whichever of its names this restore selected first.
            const holder = links.holderOf.get(e);
            if (!holder) return undefined;
            const t = tempOf(holder);
            staged.set(holder.path, t);
            return t;
          },
          a.onBytes,
        );
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
      await a.validate?.(staged);
    } catch (err) {
      await cleanup();
      throw err;
    }

    // Made under a '.partial' name and renamed when whole: a copy cut short never looks usable, and
    // the next start of the agent removes it (agent/recovery.ts).
    const rollbackDir = path.join(a.stateDir, ROLLBACK_DIR, `${a.backupId}-${a.part.component}-${Date.now()}`);
    const making = rollbackDir + PARTIAL_SUFFIX;
    try {
      await mkdirPrivate(making);
      const touched = a.restorePaths.filter((r) => entries.some((e) => isInside(path.resolve(r), e.path)));
      for (const r of touched) {
        if (!existed.has(r)) continue;
        const copy = path.join(making, path.resolve(r));
        await fsp.mkdir(path.dirname(copy), { recursive: true, mode: 0o700 });
        await run(['cp', '-a', '--', r, copy]);
      }
      // cp copies our temp files too; they are not part of what was replaced.
      await run(['find', making, '-name', `*${tag}`, '-delete']);
      await writeFileAtomic(path.join(making, COMPLETE_MARKER), `${new Date().toISOString()}\n`);
      await fsp.rename(making, rollbackDir);
    } catch (err) {
      await cleanup();
      await fsp.rm(making, { recursive: true, force: true });
      throw err;
    }
    a.report?.(`rollback copy of the replaced files: ${rollbackDir}`);

    const files = entries.filter((e) => e.type !== 'dir');
    // A rename keeps the file's own times: all of it is set on the staged names, in one go.
    await applyMetaAll(files.map((e) => ({ entry: e, dest: staged.get(e.path)! })), a.report);
    for (const e of files) {
      const t = staged.get(e.path)!;
      const old = await fsp.lstat(e.path).catch(() => undefined);
      if (old?.isDirectory()) await fsp.rm(e.path, { recursive: true });
      await fsp.rename(t, e.path);
      staged.delete(e.path);
    }
    // Directories last and deepest first: writing into a directory changes its mtime.
    await applyMetaAll([...dirs].reverse().map((d) => ({ entry: d, dest: d.path, existed: !created.has(d.path) })), a.report);
    return { restored: entries.length, rollbackDir };
  }
}
