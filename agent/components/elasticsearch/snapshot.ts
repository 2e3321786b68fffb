import { promises as fsp } from 'node:fs';
import { InputError, PreconditionError, messageOf } from '../../../common/errors.js';
import { run } from '../../../common/exec.js';
import { pollUntil } from '../../../common/poll.js';
import { POLL, enc, esTypeOf, type EsClient, type SnapshotInfo } from './client.js';
import type { ClusterPlace } from './cluster.js';
import type { Config } from './config.js';
import type { BackupContext } from '../component.js';

/** The repository and the snapshot life cycle: registering, choosing indices, deleting. */

/** The security plugin's own index, under its Open Distro and OpenSearch names. */
export const SECURITY_INDICES = ['.opendistro_security', '.opensearch_security'];

/** Registers the fs repository unless it is registered already as wanted. */
export async function ensureRepository(cfg: Config, client: EsClient, repository: string, location: string, place: ClusterPlace, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<boolean> {
  const current = await client.repository(repository, signal);
  const want = { location, readonly: cfg.readonly };
  if (current && current.type === 'fs' && current.settings.location === location && String(current.settings.readonly ?? false) === String(cfg.readonly)) return true;
  if (dryRun) {
    say(`dry run: would register repository ${repository} (fs, ${JSON.stringify(want)})`);
    return false;
  }
  if (current) say(`repository ${repository} is registered as ${current.type} ${JSON.stringify(current.settings)}; re-registering it at ${location}`);
  if (!cfg.readonly) {
    const created = await fsp.mkdir(location, { recursive: true, mode: 0o700 });
    if (created && cfg.repository_owner) {
      const { uid, gid } = await resolveOwner(cfg.repository_owner);
      await fsp.chown(location, uid, gid);
    }
  }
  const settings: Record<string, unknown> = { location };
  if (cfg.readonly) settings.readonly = true;
  const register = () => client.request('PUT', `/_snapshot/${enc(repository)}`, { type: 'fs', settings }, { signal });
  // While the other nodes' agents add the location to their path.repo in turn, the cluster refuses the repository.
  const othersRestarting = cfg.allow_config_edit && place.nodes.length > 1;
  let lastErr: unknown;
  const done = await pollUntil(Date.now() + (othersRestarting ? cfg.reload_timeout_seconds * 1000 * place.nodes.length : 0), { ...POLL, signal }, async () => {
    try {
      await register();
      return true;
    } catch (err) {
      const type = esTypeOf(err);
      if (type !== 'repository_verification_exception' && type !== 'repository_exception') throw err;
      lastErr = err;
      return othersRestarting ? undefined : false;
    }
  });
  if (done === true) return true;
  if (esTypeOf(lastErr) === 'repository_verification_exception') {
    throw new PreconditionError(
      `${messageOf(lastErr)} (every master and data node must be able to write ${location} as the user Elasticsearch runs as; repository_owner makes the agent give it the directory it creates)`,
    );
  }
  throw lastErr;
}


async function resolveOwner(spec: string): Promise<{ uid: number; gid: number }> {
  const [user, group] = spec.split(':');
  const num = async (flag: string, name: string) => (/^\d+$/.test(name) ? Number(name) : Number((await run(['id', flag, name])).stdout.trim()));
  const uid = await num('-u', user!);
  const gid = group ? (/^\d+$/.test(group) ? Number(group) : Number((await run(['getent', 'group', group])).stdout.split(':')[2])) : await num('-g', user!);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new InputError(`repository_owner '${spec}': cannot resolve it to a uid and gid`);
  return { uid, gid };
}


/** Through the API, never by removing files: the repository's index files must stay consistent. */
export async function deleteSnapshot(client: EsClient, repository: string, snap: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
  await client.request('DELETE', `/_snapshot/${enc(repository)}/${enc(snap)}`, undefined, opts);
}

export async function abortSnapshot(client: EsClient, repository: string, snap: string, log: BackupContext['log']): Promise<void> {
  // Deleting a running snapshot is how the API aborts it; a stuck one would block later snapshots.
  await deleteSnapshot(client, repository, snap).catch((err) => log.warn(`could not abort snapshot ${snap}: ${messageOf(err)}`));
}


function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

const DEFAULT_INDICES = ['*', '-.*'];

/**
 * The snapshot's indices the operator asked for: a comma list of names and `*` patterns, `-x`
 * removing what came before (a list that starts with `-x` starts from the default). The default
 * is every index but the dot-prefixed system ones.
 */
export function chooseIndices(available: string[], requested: string | undefined, security: boolean, snap: string): string[] {
  const terms = (requested ?? DEFAULT_INDICES.join(',')).split(',').map((t) => t.trim()).filter(Boolean);
  if (terms[0]?.startsWith('-')) terms.unshift(...DEFAULT_INDICES);
  const chosen = new Set<string>();
  for (const term of terms) {
    const exclude = term.startsWith('-');
    const pat = exclude ? term.slice(1) : term;
    const re = wildcard(pat);
    const hits = available.filter((i) => re.test(i));
    if (!exclude && hits.length === 0 && !pat.includes('*')) {
      throw new InputError(`index '${pat}' is not in snapshot ${snap} (it holds: ${available.slice(0, 20).join(', ')}${available.length > 20 ? ', …' : ''})`);
    }
    for (const h of hits) exclude ? chosen.delete(h) : chosen.add(h);
  }
  if (security) for (const s of SECURITY_INDICES) chosen.delete(s);
  if (chosen.size === 0) throw new InputError(`no index of snapshot ${snap} matches indices='${requested ?? DEFAULT_INDICES.join(',')}'`);
  return [...chosen].sort();
}

export function describeFailures(info: SnapshotInfo): string {
  const shards = (info.failures ?? []).map((f) => `index ${f.index ?? '?'} shard ${f.shard_id ?? '?'}${f.node_id ? ` on node ${f.node_id}` : ''}: ${f.reason ?? 'no reason given'}`);
  const counts = info.shards ? ` (${info.shards.failed} of ${info.shards.total} shards failed)` : '';
  return `${shards.join('; ') || info.reason || 'no failure details'}${counts}`;
}

/** What this node says of itself right now: its layout, config file and how to reach the cluster. */
