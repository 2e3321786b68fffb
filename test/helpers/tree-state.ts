import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/**
 * Everything a restore must bring back of a tree, one line per path (relative to `root`): type,
 * mode, owner, nanosecond mtime, content hash or link target. Compared before and after.
 */
export async function treeState(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    const meta = `${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeNs}`;
    if (st.isSymbolicLink()) out.set(rel, `link ${await fsp.readlink(p)} ${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
    else if (st.isDirectory()) {
      out.set(rel, `dir ${meta}`);
      for (const n of (await fsp.readdir(p)).sort()) await walk(path.join(p, n));
    } else out.set(rel, `file ${meta} ${st.size} ${await sha256(p)}`);
  };
  await walk(root);
  return out;
}

/** The states of several roots at once, keyed by absolute path; an absent root is recorded as absent. */
export async function treesState(roots: string[]): Promise<Map<string, string>> {
  const all = new Map<string, string>();
  for (const r of roots) {
    const there = await fsp.lstat(r).then(() => true, () => false);
    if (!there) {
      all.set(r, 'absent');
      continue;
    }
    for (const [rel, v] of await treeState(r)) all.set(path.join(r, rel), v);
  }
  return all;
}
