import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML, { isSeq, type Document } from 'yaml';
import { PreconditionError, UnavailableError, messageOf } from '../../../common/errors.js';
import { run } from '../../../common/exec.js';
import { isInside, writeFileAtomic } from '../../../common/fsutil.js';
import { pollUntil } from '../../../common/poll.js';
import { POLL, type ClusterHealth, type EsClient } from './client.js';
import type { ClusterPlace } from './cluster.js';
import type { Config } from './config.js';
import { pathRepoOf } from './lambdastack.js';
import type { NodeView } from './node.js';

/** path.repo: the node must list the snapshot location before the cluster accepts the repository; edited one node at a time. */

async function waitForCluster(cfg: Config, client: EsClient, what: string, signal: AbortSignal, ready: (h: ClusterHealth) => boolean): Promise<ClusterHealth> {
  const deadline = Date.now() + cfg.reload_timeout_seconds * 1000;
  let last = '';
  const h = await pollUntil(deadline, { ...POLL, signal }, async () => {
    try {
      const now = await client.health(signal);
      if (ready(now)) return now;
      last = `cluster health ${now.status}, ${now.number_of_nodes ?? '?'} nodes`;
    } catch (err) {
      last = messageOf(err);
    }
    return undefined;
  });
  if (!h) throw new UnavailableError(`${what} within ${cfg.reload_timeout_seconds}s: ${last}`);
  return h;
}


/**
 * Runs `restart` while this node holds the cluster's restart lock, a file beside the repository
 * on the shared location that every agent of the cluster sees: never more than one node down.
 * Before: every node in, nothing red or moving; allocation held to primaries (no shard copies
 * rebuilt for a node that is back in a minute), as LambdaStack's rolling upgrade does. After:
 * the node back in, allocation re-enabled, and the health it had before.
 */
async function oneNodeAtATime(cfg: Config, client: EsClient, location: string, place: ClusterPlace, node: string, signal: AbortSignal, say: (line: string) => void, restart: () => Promise<void>): Promise<void> {
  const lock = path.join(path.dirname(location), `.${path.basename(location)}.restart.lock`);
  await fsp.mkdir(path.dirname(lock), { recursive: true, mode: 0o700 });
  const turnMs = cfg.reload_timeout_seconds * 1000;
  const expected = Math.max(1, place.nodes.length);
  let holder = '';
  const got = await pollUntil(Date.now() + turnMs * expected, { ...POLL, signal }, async () => {
    try {
      await fsp.writeFile(lock, `${JSON.stringify({ node, pid: process.pid, since: new Date().toISOString() })}\n`, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await fsp.stat(lock).catch(() => undefined);
    // A holder that died mid-restart would block the cluster forever; two turns is longer than any live one.
    if (st && Date.now() - st.mtimeMs > 2 * turnMs) {
      say(`restart lock ${lock} is older than ${2 * cfg.reload_timeout_seconds}s; taking it over`);
      await fsp.rm(lock, { force: true });
      return undefined;
    }
    holder = (await fsp.readFile(lock, 'utf8').catch(() => '')).trim();
    return undefined;
  });
  if (!got) throw new UnavailableError(`waited ${(turnMs * expected) / 1000}s for restart lock ${lock} (held by ${holder || 'another node'})`);
  try {
    const whole = (h: ClusterHealth) => (h.number_of_nodes ?? 1) >= expected && h.status !== 'red';
    const before = await waitForCluster(cfg, client, 'the cluster was not whole and settled before restarting this node', signal, (h) => whole(h) && !h.initializing_shards && !h.relocating_shards);
    await client.request('PUT', '/_cluster/settings', { persistent: { 'cluster.routing.allocation.enable': 'primaries' } }, { signal });
    // Optional, as in LambdaStack's upgrade: a flush speeds up shard recovery after the restart.
    await client.request('POST', '/_flush', undefined, { signal }).catch((err) => say(`flush before restart failed (${messageOf(err)}); restarting anyway`));
    try {
      await restart();
      await waitForCluster(cfg, client, `after ${cfg.reload_command!.join(' ')} the node did not rejoin the cluster`, signal, whole);
    } finally {
      await client
        .request('PUT', '/_cluster/settings', { persistent: { 'cluster.routing.allocation.enable': null } }, { signal })
        .catch((err) => say(`could not re-enable shard allocation (${messageOf(err)}): PUT _cluster/settings {"persistent":{"cluster.routing.allocation.enable":null}} by hand`));
    }
    const back = before.status === 'green' ? ['green'] : ['green', 'yellow'];
    await waitForCluster(cfg, client, `the cluster did not get back to ${before.status} after restarting this node`, signal, (h) => whole(h) && back.includes(h.status));
  } finally {
    await fsp.rm(lock, { force: true });
  }
}


/**
 * Makes sure this node's path.repo covers the location. Refused, it says in one line which
 * file, what path.repo holds and what it must hold; allowed, it edits and restarts in turn.
 */
export async function ensurePathRepo(cfg: Config, v: NodeView, client: EsClient, location: string, place: ClusterPlace, node: string, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<void> {
  if (!v.config.settings) throw new PreconditionError(`cannot read ${v.configFile} to check path.repo: ${v.config.problem ?? 'unreadable'}`);
  const repos = pathRepoOf(v.config.settings);
  if (repos.some((r) => path.isAbsolute(r) && isInside(path.resolve(r), location))) return;
  const fix = `path.repo: ${JSON.stringify([...repos, location])}`;
  const nodes = place.key ? `every node of cluster ${place.key}${place.nodes.length ? ` (${place.nodes.join(', ')})` : ''}` : 'every master and data node';
  if (!cfg.allow_config_edit) {
    throw new PreconditionError(
      `${v.configFile} has path.repo ${repos.length ? JSON.stringify(repos) : '(not set)'}, which does not cover the snapshot location ${location}: ` +
        `set ${fix} on ${nodes} and restart them one at a time, or set allow_config_edit: true with a reload_command`,
    );
  }
  if (dryRun) {
    say(`dry run: would add ${location} to path.repo in ${v.configFile} and run ${cfg.reload_command!.join(' ')}, one node of the cluster at a time`);
    return;
  }
  await oneNodeAtATime(cfg, client, location, place, node, signal, say, async () => {
    // Read again under the lock: the file is the node's, and may have changed while this agent waited.
    const text = await fsp.readFile(v.configFile, 'utf8');
    const doc = YAML.parseDocument(text);
    if (doc.errors.length > 0) throw new PreconditionError(`${v.configFile} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    if (!pathRepoOf(doc.toJS()).some((r) => path.isAbsolute(r) && isInside(path.resolve(r), location))) {
      addPathRepo(doc, location);
      const st = await fsp.stat(v.configFile);
      await writeFileAtomic(v.configFile, doc.toString(), st.mode & 0o7777);
      await fsp.chown(v.configFile, st.uid, st.gid);
    }
    say(`added ${location} to path.repo in ${v.configFile}; running ${cfg.reload_command!.join(' ')}`);
    await run(cfg.reload_command!, { signal });
  });
}


function addPathRepo(doc: Document, location: string): void {
  const key = doc.has('path.repo') ? ['path.repo'] : doc.hasIn(['path', 'repo']) ? ['path', 'repo'] : undefined;
  if (!key) {
    const node = doc.createNode([location]);
    node.flow = true;
    doc.set('path.repo', node);
    return;
  }
  const current = doc.getIn(key, true);
  if (isSeq(current)) {
    current.add(doc.createNode(location));
    return;
  }
  const node = doc.createNode([...pathRepoOf({ 'path.repo': doc.getIn(key) }), location]);
  node.flow = true;
  doc.setIn(key, node);
}
