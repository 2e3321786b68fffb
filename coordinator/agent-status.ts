import type { AgentsReply } from '../proto/generated/lsbackup/v1/AgentsReply.js';
import type { AgentsRequest__Output as AgentsRequest } from '../proto/generated/lsbackup/v1/AgentsRequest.js';
import type { AgentStatus } from '../proto/generated/lsbackup/v1/AgentStatus.js';
import { AgentPool, describeRpcError } from './agents.js';
import { readClusterConfig } from './cluster-config.js';
import { readInventory, type InventoryHost } from './inventory.js';
import { plan, type ComponentPlan } from './plan.js';

/** Every agent the inventory expects, what it should serve, and what it answers (or why it does not). */
export async function agentStatus(deps: { pool: AgentPool; agentPort: number }, req: AgentsRequest): Promise<AgentsReply> {
  const inv = await readInventory(req.buildDir, deps.agentPort);
  const cluster = await readClusterConfig(req.buildDir, inv.file);
  const planned = [...inv.hosts.values()].some((h) => h.components.size > 0) ? plan(inv.hosts, [], [], cluster).hosts : new Map<InventoryHost, ComponentPlan[]>();
  const agents: AgentStatus[] = await Promise.all(
    [...planned.keys()].sort((a, b) => a.name.localeCompare(b.name)).map(async (h) => {
      const base = { node: h.name, address: h.agent, expectedComponents: planned.get(h)!.map((p) => (p.optional ? `${p.component}?` : p.component)) };
      try {
        return { ...base, reachable: true, info: await deps.pool.info(h.agent, h.name, req.target) };
      } catch (err) {
        return { ...base, reachable: false, error: describeRpcError(err) };
      }
    }),
  );
  return { agents, notCovered: inv.notCovered };
}
