import type { Entry } from './manifest.js';

/**
 * How a selection of a part's entries gets its hard links back (FORMAT.md, `linkOf`). A group's
 * data is in the zip once, under its first entry; it is extracted to the group's first selected
 * member (the `holder`), and the other selected members become links to that file.
 */
export interface LinkPlan {
  /** The entry whose zip data a selected member needs, to the member that receives it. */
  holderOf: Map<Entry, Entry>;
  /** Selected members to make as links, each with the holder it links to. */
  links: { member: Entry; holder: Entry }[];
}

export function planHardLinks(selected: Entry[], all: Entry[]): LinkPlan {
  const byPath = new Map(all.map((e) => [e.path, e]));
  const holderOf = new Map<Entry, Entry>();
  const links: LinkPlan['links'] = [];
  for (const e of selected) {
    if (e.type !== 'file') continue;
    const first = e.linkOf ? byPath.get(e.linkOf) : e;
    if (!first) continue; // the schema makes every linkOf name an earlier file entry
    const holder = holderOf.get(first);
    if (holder) links.push({ member: e, holder });
    else holderOf.set(first, e);
  }
  return { holderOf, links };
}
