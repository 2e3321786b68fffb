import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { BusyError } from './errors.js';

interface LockInfo {
  pid: number;
  host: string;
  what: string;
  since: string;
}

/** Whether a process with this pid exists (EPERM: it does, but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One operation at a time per lock file. A lock whose process is gone (same host, dead pid) is
 * stale and cleared; a live one is refused with a message naming what holds it.
 */
export async function acquireLock(file: string, what: string): Promise<() => Promise<void>> {
  const mine: LockInfo = { pid: process.pid, host: os.hostname(), what, since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await fsp.open(file, 'wx', 0o600);
      await fh.writeFile(JSON.stringify(mine));
      await fh.close();
      return async () => {
        await fsp.rm(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let held: LockInfo | undefined;
    try {
      held = JSON.parse(await fsp.readFile(file, 'utf8')) as LockInfo;
    } catch {
      held = undefined; // being written right now, or torn by a crash: look again
    }
    if (held && held.host === mine.host && !processAlive(held.pid)) {
      await fsp.rm(file, { force: true });
      continue;
    }
    if (held) throw new BusyError(`busy: ${held.what} is running (pid ${held.pid} on ${held.host} since ${held.since}); lock ${file}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new BusyError(`busy: could not take lock ${file}`);
}
