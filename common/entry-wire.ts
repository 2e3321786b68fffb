import type { Entry__Output as WireEntryOut } from '../proto/generated/lsbackup/v1/Entry.js';
import type { Entry } from './manifest.js';
import type { Extent } from './sparse.js';

/** A manifest entry as the agent sends it in its ComponentResult (proto has no optional arrays of pairs). */
export function entryToWire(e: Entry): WireEntryOut {
  const { linkOf, dataExtents, xattrs, ...plain } = e;
  return { ...plain, linkOf: linkOf ?? '', sparse: dataExtents !== undefined, dataExtents: (dataExtents ?? []).flat(), xattrs: xattrs ?? {} };
}

/** The manifest entry back from the wire: the 1.4 keys only where they say something (FORMAT.md). */
export function entryFromWire(w: WireEntryOut): Entry {
  const pairs: Extent[] = [];
  for (let i = 0; i + 1 < w.dataExtents.length; i += 2) pairs.push([Number(w.dataExtents[i]), Number(w.dataExtents[i + 1])]);
  return {
    archive: w.archive,
    name: w.name,
    path: w.path,
    type: w.type === 'dir' || w.type === 'symlink' ? w.type : 'file',
    size: Number(w.size),
    sha256: w.sha256,
    mode: w.mode,
    uid: w.uid,
    gid: w.gid,
    mtimeNs: w.mtimeNs,
    linkTarget: w.linkTarget,
    ...(w.linkOf ? { linkOf: w.linkOf } : {}),
    ...(w.sparse ? { dataExtents: pairs } : {}),
    ...(Object.keys(w.xattrs ?? {}).length ? { xattrs: { ...w.xattrs } } : {}),
  };
}
