import { promises as fsp, constants as fsc } from 'node:fs';
import path from 'node:path';
import { InputError, messageOf } from '../common/errors.js';
import { mkdirPrivate } from '../common/fsutil.js';
import { acquireLock } from '../common/lock.js';
import { shown } from '../common/quote.js';

/** The lock file of a target: one backup, restore or prune at a time, so prune never removes what is being read. */
export const TARGET_LOCK = '.lsbackup.lock';

export function lockFileOf(target: string): string {
  return path.join(target, TARGET_LOCK);
}

/** Takes the target's lock for `what`; the returned function gives it back. A held lock is a BusyError naming its holder. */
export function lockTarget(target: string, what: string): Promise<() => Promise<void>> {
  return acquireLock(lockFileOf(target), what);
}

/**
 * The lock for a run that only reads the target (restore). A target mounted read-only (a rebuilt
 * cluster reading the old share, or a copy) cannot take it and needs none: nothing can prune or
 * write it through this mount. `say` is told once that the run goes on without it.
 */
export async function lockForReading(target: string, what: string, say: (line: string) => void): Promise<() => Promise<void>> {
  try {
    return await lockTarget(target, what);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EROFS') throw err;
    say(`${target} is read-only: restoring without taking its lock (nothing is written to the target)`);
    return async () => undefined;
  }
}

/** The target must be a directory we can write, created owner-only when it does not exist yet. */
export async function prepareTarget(target: string): Promise<void> {
  if (!target || !path.isAbsolute(target)) throw new InputError(`target '${shown(target)}' must be an absolute path`);
  try {
    await mkdirPrivate(target);
    await fsp.access(target, fsc.W_OK);
    const probe = path.join(target, `.lsbackup-probe-${process.pid}`);
    await fsp.writeFile(probe, '');
    await fsp.rm(probe);
  } catch (err) {
    throw new InputError(`target '${shown(target)}' is not writable: ${messageOf(err)}`);
  }
}
