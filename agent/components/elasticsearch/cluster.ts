import path from 'node:path';
import type { Config } from './config.js';

/** Which cluster a part belongs to, and the snapshot and repository names that follow from it. */

/** Snapshot names must be lowercase and unique in the repository; one per backup set. */
export function snapshotNameOf(backupId: string): string {
  return `lsbackup-${backupId.toLowerCase()}`;
}

/**
 * The cluster a part belongs to, as a name safe in repository names and paths: the es_cluster
 * fact (the inventory group, or manifest.yml's cluster_name), recorded in the part's meta so
 * that restore and release, which get no facts, find the same repository.
 */
export function clusterKeyOf(raw: string | undefined): string | undefined {
  const key = (raw ?? '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+|-+$/g, '');
  return key || undefined;
}

/**
 * One repository and one location per cluster: two clusters writing one fs repository would
 * corrupt each other's repository index. Settings in agent.yaml win.
 */
export function repositoryOf(cfg: Config, setDir: string, key: string | undefined): { repository: string; location: string } {
  const shared = path.join(path.dirname(path.resolve(setDir)), '_elasticsearch');
  return {
    repository: cfg.repository ?? (key ? `lsbackup-${key}` : 'lsbackup'),
    location: cfg.repository_location ?? (key ? path.join(shared, key) : shared),
  };
}

/** What a backup knows of the cluster from the build directory (BackupContext.facts). */
export interface ClusterPlace {
  key?: string;
  nodes: string[];
  /** Set when the facts say which node takes the cluster's snapshot: the one with es_node_index 0. */
  taker?: string;
  follower: boolean;
}

export function placeOf(facts: Record<string, string>): ClusterPlace {
  const nodes = (facts.es_nodes ?? '').split(',').map((n) => n.trim()).filter(Boolean);
  const index = facts.es_node_index?.trim();
  const hasIndex = index !== undefined && index !== '';
  return {
    key: clusterKeyOf(facts.es_cluster),
    nodes,
    taker: hasIndex ? (nodes[0] ?? 'the node with es_node_index 0') : undefined,
    follower: hasIndex && index !== '0',
  };
}
