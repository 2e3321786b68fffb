import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Entry } from '../common/manifest.js';
import { isInside } from '../common/fsutil.js';
import { run, type RunOptions, type RunResult } from '../common/exec.js';

/**
 * A part's new files as a whole tree, for checks that follow the paths a config names: HAProxy
 * opens the certificates and error files haproxy.cfg names as absolute paths, so checking the
 * staged config against the live file system fails on a node that lost them (a rebuilt node).
 */
export interface StagedTree {
  /** Original path -> where the new file is staged beside it. */
  files: Map<string, string>;
  /**
   * Runs `cmd` seeing the staged tree at the original paths: in a private mount namespace
   * (`unshare -m`) where each restore root is bind-mounted from the staging copy. Only that
   * process sees it; the live file system is untouched. Undefined when the namespace cannot be
   * made (not root, no unshare): the caller checks against the live file system as before.
   */
  run?: (cmd: string[], opts?: RunOptions) => Promise<RunResult>;
  /** Why `run` is missing, for one warning line. */
  unavailable?: string;
}

/**
 * A runner for checks that must see the part's new files at their original paths. Nothing is laid
 * out until the first check runs (most validators read only the staged files themselves); then
 * the staged files are linked (copied across file systems) into `<stagingDir>/root/<original
 * path>` with the part's directories and symlinks, and each touched restore root is bind-mounted
 * from there over the real one in the check's own mount namespace. A root the node has lost gets
 * an empty placeholder to mount onto, removed again by `dispose`.
 */
export async function buildStagedTree(stagingDir: string, entries: Entry[], files: Map<string, string>, restorePaths: string[]): Promise<StagedTree & { dispose(): Promise<void> }> {
  const root = path.join(stagingDir, 'root');
  const inRoot = (p: string) => path.join(root, p);
  const touched = restorePaths.map((r) => path.resolve(r)).filter((r) => entries.some((e) => isInside(r, e.path)));
  const placeholders: string[] = [];
  const dispose = async () => {
    for (const p of placeholders.reverse()) await fsp.rm(p, { recursive: true, force: true });
    await fsp.rm(stagingDir, { recursive: true, force: true });
  };
  const unavailable = await namespaceUnavailable();
  if (unavailable) return { files, unavailable, dispose };

  let mounts: (readonly [string, string])[] | undefined;
  async function layOut(): Promise<(readonly [string, string])[]> {
    await fsp.mkdir(root, { recursive: true, mode: 0o700 });
    for (const e of entries) {
      const dest = inRoot(e.path);
      if (e.type === 'dir') {
        await fsp.mkdir(dest, { recursive: true, mode: 0o700 });
        continue;
      }
      await fsp.mkdir(path.dirname(dest), { recursive: true, mode: 0o700 });
      if (e.type === 'symlink') {
        await fsp.symlink(e.linkTarget, dest);
        continue;
      }
      const staged = files.get(e.path);
      // Same owner and mode as the restore will give: a check run as the service user reads as it will.
      if (staged) await fsp.link(staged, dest).catch(() => fsp.copyFile(staged, dest));
    }
    const out: (readonly [string, string])[] = [];
    // Shallow roots first, so a root nested in another is mounted on top of it.
    for (const r of touched.sort((a, b) => a.length - b.length)) {
      const src = inRoot(r);
      const isDir = (await fsp.lstat(src).catch(() => undefined))?.isDirectory() ?? true;
      if (isDir) await fsp.mkdir(src, { recursive: true, mode: 0o700 });
      if (!(await fsp.lstat(r).catch(() => undefined))) {
        if (isDir) await fsp.mkdir(r, { recursive: true, mode: 0o700 });
        else await fsp.writeFile(r, '', { mode: 0o600, flag: 'wx' });
        placeholders.push(r);
      }
      out.push([src, r] as const);
    }
    return out;
  }
  return {
    files,
    dispose,
    async run(cmd, opts) {
      mounts ??= await layOut();
      const script = mounts.map((_, i) => `mount --bind -- "\${${2 * i + 1}}" "\${${2 * i + 2}}"`).concat([`shift ${2 * mounts.length}`, 'exec "$@"']).join(' && ');
      return run(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', ...mounts.flat(), ...cmd], opts);
    },
  };
}

let namespaceProbe: Promise<string | undefined> | undefined;

/** Whether this process may make a private mount namespace; asked once. */
function namespaceUnavailable(): Promise<string | undefined> {
  namespaceProbe ??= run(['unshare', '--mount', '--propagation', 'private', '--', 'true'], { check: false }).then(
    (r) => (r.code === 0 ? undefined : `unshare --mount failed (${r.stderr.trim().split('\n')[0] || `exit ${r.code}`})`),
    (err: Error) => `unshare is not available (${err.message.split('\n')[0]})`,
  );
  return namespaceProbe;
}
