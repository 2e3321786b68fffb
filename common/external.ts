import type { Part } from './manifest.js';

/**
 * Data a part keeps outside its set directory. Removing the set must first have it deleted by an
 * agent that serves the part's component: the coordinator never talks to a component's server.
 */
export interface ExternalData {
  /** Parts with the same key hold the same data: every node of a cluster, or a copied set. */
  key: string;
  /** For the operator: what it is and where. */
  what: string;
  /** How to delete it by hand when no agent could. */
  byHand: string;
}

/**
 * The elasticsearch part's snapshot lives in the shared repository beside the sets
 * (docs/FORMAT.md); its meta names it, on failed parts too once the snapshot was started.
 */
export function externalDataOf(part: Part): ExternalData | undefined {
  const { snapshot, repository, location } = part.meta;
  if (part.component !== 'elasticsearch' || !snapshot) return undefined;
  return {
    key: JSON.stringify([location, snapshot]),
    what: `Elasticsearch snapshot ${snapshot} in repository ${repository} (${location})`,
    byHand: `DELETE /_snapshot/${repository}/${snapshot}`,
  };
}
