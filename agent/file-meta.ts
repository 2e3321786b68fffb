import { chmodSync, lchownSync } from 'node:fs';
import { timeSlicer } from '../common/parallel.js';
import type { Entry } from '../common/manifest.js';
import { finishMetadata } from '../common/final-meta.js';
import { writeXattrs } from '../common/xattrs.js';

/** A restored entry and where it now is (its staged temp name, or its final path). */
export interface Placed {
  entry: Entry;
  dest: string;
  /** A directory that was there before the restore: ACLs it has but its entry does not record stay. */
  existed?: boolean;
}

/** Synchronous: one restore sets thousands of these, each a few microseconds (common/parallel.ts timeSlicer). */
function applyOwnerAndMode(e: Entry, dest: string): void {
  try {
    lchownSync(dest, e.uid, e.gid);
  } catch (err) {
    // Only root can give files away; as another user, keep our own ownership rather than fail.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM' || process.getuid?.() === 0) throw err;
  }
  if (e.type !== 'symlink') chmodSync(dest, e.mode & 0o7777);
}

/**
 * Gives restored entries the owner, mode, extended attributes (ACLs, SELinux labels) and
 * nanosecond mtime their entries recorded (FORMAT.md, "Exact metadata"), in that order: chown
 * clears file capabilities and setuid bits, and the times go last because setting attributes
 * does not change them but writing does. An ACL a new inode inherited but its entry does not
 * record is dropped (not from a directory that `existed`). Times are set in the order given, so a directory listed
 * after its contents keeps its own. One setfattr and one python3 for all of them.
 */
export async function applyMetaAll(items: Placed[], report?: (line: string) => void): Promise<void> {
  const breathe = timeSlicer();
  for (const { entry, dest } of items) {
    applyOwnerAndMode(entry, dest);
    await breathe();
  }
  const withXattrs = items.filter((i) => i.entry.xattrs && Object.keys(i.entry.xattrs).length > 0);
  if (!(await writeXattrs(withXattrs.map((i) => ({ path: i.dest, xattrs: i.entry.xattrs! }))))) {
    report?.(`setfattr not found (install the Debian package attr): ${withXattrs.length} entries restored without their extended attributes or ACLs, e.g. ${withXattrs[0]!.entry.path}`);
  }
  const keeps = (i: Placed, name: string) => i.existed === true || i.entry.xattrs?.[name] !== undefined;
  await finishMetadata(
    items.map((i) => ({ path: i.dest, mtimeNs: i.entry.mtimeNs, keepAccessAcl: keeps(i, 'system.posix_acl_access'), keepDefaultAcl: keeps(i, 'system.posix_acl_default') })),
    report,
  );
}

/** One entry's metadata; applyMetaAll for many (it starts one python3 per call). */
export async function applyMeta(e: Entry, dest: string): Promise<void> {
  await applyMetaAll([{ entry: e, dest }]);
}
