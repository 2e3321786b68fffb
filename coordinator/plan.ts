import { InputError } from '../common/errors.js';
import { shown } from '../common/quote.js';
import { COMPONENTS } from '../common/manifest.js';
import type { ClusterConfig } from './cluster-config.js';

/** No host of the inventory runs what was asked for: the caller says which inventory that was. */
export class NothingToBackUpError extends InputError {}
import type { InventoryHost } from './inventory.js';

/** What one host's agent is asked to back up, and what the build directory knows of it. */
export interface ComponentPlan {
  component: string;
  /** The cluster may not run it on this host: an agent that finds nothing reports it skipped. */
  optional: boolean;
  facts: Record<string, string>;
}

export interface BackupPlan {
  hosts: Map<InventoryHost, ComponentPlan[]>;
  /** Lines for the operator: what the build directory decided ("alertmanager: disabled in ..."). */
  notes: string[];
}

/** Inventory groups that are Elasticsearch clusters: each is its own cluster, with its own repository. */
const ES_GROUPS = ['logging', 'opendistro_for_elasticsearch', 'opensearch', 'elasticsearch'];

/**
 * Chooses hosts and their components from the inventory, the cluster's manifest.yml (when the
 * build directory has one) and the --node/--component filters. Without a manifest.yml, what
 * LambdaStack installs only on request (Alertmanager) is optional: the agent looks for it.
 */
export function plan(hosts: Map<string, InventoryHost>, nodes: string[], components: string[], cluster?: ClusterConfig): BackupPlan {
  for (const c of components) {
    if (!(COMPONENTS as readonly string[]).includes(c)) throw new InputError(`unknown component '${shown(c)}' (known: ${COMPONENTS.join(', ')})`);
  }
  for (const n of nodes) {
    if (!hosts.has(n)) throw new InputError(`unknown node '${shown(n)}' (inventory has: ${[...hosts.keys()].join(', ')})`);
  }
  const notes: string[] = [];
  if (cluster && !cluster.alertmanager && [...hosts.values()].some((h) => h.components.has('alertmanager'))) {
    notes.push(`alertmanager: not enabled in ${cluster.file} (configuration/prometheus alertmanager.enable), so not backed up`);
  }
  const esMembers = new Map<string, string[]>();
  for (const h of hosts.values()) {
    const g = ES_GROUPS.find((x) => h.groups.includes(x));
    if (g) esMembers.set(g, [...(esMembers.get(g) ?? []), h.name]);
  }
  const pgHosts = [...hosts.values()].filter((h) => h.components.has('postgresql')).map((h) => h.name);

  const out = new Map<InventoryHost, ComponentPlan[]>();
  for (const h of hosts.values()) {
    if (nodes.length && !nodes.includes(h.name)) continue;
    const chosen: ComponentPlan[] = [];
    for (const component of h.components) {
      if (components.length && !components.includes(component)) continue;
      const p: ComponentPlan = { component, optional: false, facts: {} };
      switch (component) {
        case 'alertmanager':
          if (cluster && !cluster.alertmanager) continue;
          p.optional = !cluster;
          break;
        case 'elasticsearch': {
          const g = ES_GROUPS.find((x) => h.groups.includes(x))!;
          const members = esMembers.get(g)!;
          p.facts = { es_cluster: g, es_nodes: members.join(','), es_node_index: String(members.indexOf(h.name)) };
          const name = cluster?.esClusterNames[g];
          if (name) p.facts.es_cluster_name = name;
          break;
        }
        case 'postgresql':
          if (cluster) {
            // Epiphany 1.3 and 2.x ignore the setting and replicate whenever there are two hosts.
            const enabled = cluster.kind === 'epiphany-cluster' ? pgHosts.length > 1 : cluster.replication.enabled;
            p.facts = { replication: String(enabled), postgresql_hosts: pgHosts.join(',') };
            // LambdaStack makes the first host of [postgresql] the primary (roles/postgresql replication extension).
            if (enabled) Object.assign(p.facts, { primary: pgHosts[0]!, replication_user: cluster.replication.user, privileged_user: cluster.replication.privilegedUser, repmgr_database: cluster.replication.database });
          }
          break;
        case 'rabbitmq':
          if (cluster) p.facts = { rabbitmq_plugins: cluster.rabbitmqPlugins.join(',') };
          break;
      }
      chosen.push(p);
    }
    if (chosen.length) out.set(h, chosen);
  }
  if (out.size === 0) throw new NothingToBackUpError(`nothing to back up: no ${nodes.length ? `node ${nodes.join(', ')} ` : 'host '}runs ${components.length ? components.join(', ') : 'a component lsbackup covers'}`);
  return { hosts: out, notes };
}
