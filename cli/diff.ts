import type { Entry, Manifest } from '../common/manifest.js';

export interface Change {
  change: 'added' | 'removed' | 'changed';
  node: string;
  component: string;
  path: string;
}

type Indexed = Map<string, { node: string; component: string; path: string; sig: string }>;

/**
 * What one set holds, by node, component and path: its entries (streamed from the coordinator)
 * and its stream artifacts (dumps, exports: they have no entries and are compared by content).
 */
export async function indexSet(m: Manifest, entries: AsyncIterable<Entry & { node: string; component: string }>): Promise<Indexed> {
  const out: Indexed = new Map();
  for await (const e of entries) out.set(`${e.node}\0${e.component}\0${e.path}`, { node: e.node, component: e.component, path: e.path, sig: `${e.type}:${e.sha256}:${e.mode}:${e.uid}:${e.gid}:${e.linkTarget}` });
  for (const p of m.parts) {
    for (const x of p.artifacts.filter((x) => x.kind === 'stream')) {
      const name = x.path.split('/').slice(2).join('/');
      out.set(`${p.node}\0${p.component}\0${name}`, { node: p.node, component: p.component, path: name, sig: x.sha256 });
    }
  }
  return out;
}

/** Files added, removed and changed from set `a` to set `b`, by node and component. */
export function diffIndexes(ia: Indexed, ib: Indexed): Change[] {
  const changes: Change[] = [];
  for (const [k, v] of ib) {
    const old = ia.get(k);
    if (!old) changes.push({ change: 'added', node: v.node, component: v.component, path: v.path });
    else if (old.sig !== v.sig) changes.push({ change: 'changed', node: v.node, component: v.component, path: v.path });
  }
  for (const [k, v] of ia) if (!ib.has(k)) changes.push({ change: 'removed', node: v.node, component: v.component, path: v.path });
  return changes.sort((x, y) => x.component.localeCompare(y.component) || x.node.localeCompare(y.node) || x.path.localeCompare(y.path));
}
