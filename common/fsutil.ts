import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/** Creates a directory (and parents) owner-only, whatever the umask. */
export async function mkdirPrivate(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
  await fsp.chmod(dir, DIR_MODE);
}

export async function fsyncPath(p: string): Promise<void> {
  const fh = await fsp.open(p, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes a whole small file so that a reader sees the old file or the new one, never half. */
export async function writeFileAtomic(file: string, data: string | Buffer, mode = FILE_MODE): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Date.now()}`);
  const fh = await fsp.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.chmod(tmp, mode);
  await fsp.rename(tmp, file);
  await fsyncPath(path.dirname(file));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** True when `child` is `parent` or lies below it (both absolute, normalised). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await fsp.statfs(dir);
  return Number(s.bavail) * Number(s.bsize);
}

/** Sum of the sizes of regular files under the given paths; missing paths count as 0. */
export async function duBytes(paths: string[], skip: (p: string) => boolean = () => false): Promise<number> {
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    if (skip(p)) return;
    let st;
    try {
      st = await fsp.lstat(p);
    } catch {
      return;
    }
    if (st.isFile()) total += st.size;
    else if (st.isDirectory()) {
      for (const name of await fsp.readdir(p)) await walk(path.join(p, name));
    }
  };
  for (const p of paths) await walk(p);
  return total;
}
