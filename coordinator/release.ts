import type { ExternalData, Manifest, Part } from '../common/manifest.js';
import { AgentPool, describeRpcError } from './agents.js';

/** One datum a set keeps outside its directory, with every part whose node can release it. */
export interface Holding {
  data: ExternalData;
  parts: Part[];
}

export function holdingsOf(m: Manifest | undefined): Holding[] {
  const byKey = new Map<string, Holding>();
  for (const part of m?.parts ?? []) {
    for (const data of part.external ?? []) {
      const h = byKey.get(data.key) ?? { data, parts: [] };
      h.parts.push(part);
      byKey.set(data.key, h);
    }
  }
  // A node whose part is ok made or shares the data, so its agent serves the component: ask it first.
  for (const h of byKey.values()) h.parts.sort((a, b) => Number(b.status === 'ok') - Number(a.status === 'ok'));
  return [...byKey.values()];
}

/**
 * Asks the holding's nodes one after another until one has released it: any node of a cluster
 * can delete the cluster's snapshot, and asking all of them at once would race deletions of it.
 */
export async function releaseHolding(pool: AgentPool, target: string, id: string, nodes: Manifest['nodes'], h: Holding): Promise<{ released: boolean; line: string }> {
  const failures: string[] = [];
  for (const part of h.parts) {
    const address = nodes[part.node]?.address;
    if (!address) {
      failures.push(`${part.node}: the set does not record where its agent is`);
      continue;
    }
    try {
      const r = await pool.release(address, part.node, { backupId: id, target, node: part.node, component: part.component, meta: part.meta, external: h.data });
      if (r.released) return { released: true, line: `${part.node}: ${r.message}` };
      failures.push(`${part.node}: ${r.message}`);
    } catch (err) {
      failures.push(`${part.node}: ${describeRpcError(err)}`);
    }
  }
  return { released: false, line: `${h.data.what} could not be deleted (${failures.join('; ')}); the next prune or delete retries (by hand: ${h.data.byHand})` };
}
