import type { Manifest } from '../common/manifest.js';

export interface Change {
  change: 'added' | 'removed' | 'changed';
  node: string;
  component: string;
  path: string;
}

/** Files added, removed and changed from set `a` to set `b`, by node and component. */
export function diffManifests(a: Manifest, b: Manifest): Change[] {
  const index = (m: Manifest) => {
    const out = new Map<string, { node: string; component: string; path: string; sig: string }>();
    for (const p of m.parts) {
      for (const e of p.entries) out.set(`${p.node}\0${p.component}\0${e.path}`, { node: p.node, component: p.component, path: e.path, sig: `${e.type}:${e.sha256}:${e.mode}:${e.uid}:${e.gid}:${e.linkTarget}` });
      // Stream artifacts (dumps, exports) have no entries; compare them by content.
      for (const x of p.artifacts.filter((x) => x.kind === 'stream')) {
        const name = x.path.split('/').slice(2).join('/');
        out.set(`${p.node}\0${p.component}\0${name}`, { node: p.node, component: p.component, path: name, sig: x.sha256 });
      }
    }
    return out;
  };
  const ia = index(a);
  const ib = index(b);
  const changes: Change[] = [];
  for (const [k, v] of ib) {
    const old = ia.get(k);
    if (!old) changes.push({ change: 'added', node: v.node, component: v.component, path: v.path });
    else if (old.sig !== v.sig) changes.push({ change: 'changed', node: v.node, component: v.component, path: v.path });
  }
  for (const [k, v] of ia) if (!ib.has(k)) changes.push({ change: 'removed', node: v.node, component: v.component, path: v.path });
  return changes.sort((x, y) => x.component.localeCompare(y.component) || x.node.localeCompare(y.node) || x.path.localeCompare(y.path));
}
