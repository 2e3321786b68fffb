import path from 'node:path';
import { existsSync } from 'node:fs';
import { Readable } from 'node:stream';
import { InputError, PreconditionError, UnavailableError, messageOf } from '../../../common/errors.js';
import { duBytes } from '../../../common/fsutil.js';
import { pollUntil } from '../../../common/poll.js';
import type { BackupContext, Component, Detection, Health, ReleaseContext, RestoreContext } from '../component.js';
import { filesHealth, restoreFilesThenRun } from '../files.js';
import { POLL, describeAuth, enc, esTypeOf, type SnapshotInfo } from './client.js';
import { clusterKeyOf, placeOf, repositoryOf, snapshotNameOf, type ClusterPlace } from './cluster.js';
import type { Config } from './config.js';
import { LAYOUTS, certificateProblem, layoutOf, rooted, settingOf, type NodeEnv } from './lambdastack.js';
import { configPathsOf as configPathsFor, connect as connectTo, view as viewOf } from './node.js';
import { ensurePathRepo } from './path-repo.js';
import { SECURITY_INDICES, abortSnapshot, chooseIndices, deleteSnapshot, describeFailures, ensureRepository } from './snapshot.js';

export { elasticsearchSchema } from './config.js';
export { snapshotNameOf } from './cluster.js';

const FILES = 'files';
const SNAPSHOT_JSON = 'snapshot.json';

/**
 * A snapshot of the whole cluster into a shared-filesystem repository (one per cluster), plus
 * the node's config files. The snapshot data stays in the repository on the shared location; the
 * set records which snapshot belongs to it, and removing the set deletes that snapshot (release).
 * With the es_node_index fact exactly one node of a cluster takes the snapshot (index 0); the
 * others keep their config files and record that the snapshot is in that node's part.
 * `env` only redirects where the node's files are looked for (tests).
 */
export function elasticsearch(cfg: Config, env: NodeEnv = {}): Component {
  const connect = () => connectTo(cfg, env);
  const view = () => viewOf(cfg, env);
  const configPathsOf = (configFile: string) => configPathsFor(cfg, configFile);

  /**
   * Every node's part names the cluster's snapshot and declares it as data outside the set, under
   * one key: any node of the cluster can delete it, and a set that stays and names it keeps it.
   */
  function recordSnapshot(ctx: BackupContext, meta: { repository: string; location: string; snapshot: string } & Record<string, string>): void {
    Object.assign(ctx.meta, meta);
    const { repository, location, snapshot } = meta;
    ctx.declareExternal({ key: JSON.stringify([location, snapshot]), what: `Elasticsearch snapshot ${snapshot} in repository ${repository} (${location})`, byHand: `DELETE /_snapshot/${repository}/${snapshot}` });
  }

  /** recordSnapshot's outside-data key read back: [location, snapshot], or nothing when it is not one. */
  function snapshotOfKey(key: string | undefined): [string?, string?] {
    try {
      const k = JSON.parse(key ?? '') as unknown;
      return Array.isArray(k) && k.length === 2 && k.every((x) => typeof x === 'string') ? [k[0] as string, k[1] as string] : [];
    } catch {
      return [];
    }
  }

  async function backup(ctx: BackupContext) {
    const place = placeOf(ctx.facts);
    const { repository, location } = repositoryOf(cfg, ctx.setDir, place.key);
    if (cfg.readonly) throw new InputError(`repository ${repository} is configured readonly: this cluster restores snapshots but cannot take them`);
    const { v, client } = await connect();
    const say = (line: string) => ctx.log.warn(line);
    // Every node, the snapshot taker or not: the shared repository must be in each one's path.repo.
    await ensurePathRepo(cfg, v, client, location, place, ctx.node, ctx.signal, say);
    const snap = snapshotNameOf(ctx.backupId);
    const cluster: Record<string, string> = place.key ? { es_cluster: place.key } : {};
    if (place.follower) {
      await ctx.addTree(FILES, v.configPaths);
      // The snapshot is named so that any node of the cluster can release it when the set goes.
      recordSnapshot(ctx, { repository, location, snapshot: snap, snapshot_taken_by: place.taker!, ...cluster });
      ctx.log.info(`snapshot ${snap} of cluster ${place.key ?? ''} is taken by ${place.taker}; this part holds ${ctx.node}'s config files`);
      return { status: 'ok' as const };
    }
    const info = await client.info(ctx.signal);
    const expectedName = ctx.facts.es_cluster_name;
    if (expectedName && info.cluster_name && info.cluster_name !== expectedName) {
      ctx.log.warn(`the build directory names this cluster ${expectedName}, but ${v.conn.url} answers as cluster ${info.cluster_name}`);
    }
    await ensureRepository(cfg, client, repository, location, place, ctx.signal, say);
    const body: Record<string, unknown> = { include_global_state: true, metadata: { taken_by: 'lsbackup', backup_id: ctx.backupId, node: ctx.node } };
    if (cfg.security_plugin) {
      // The security index holds credentials; the plugin's docs advise keeping it out of snapshots.
      body.indices = ['*', ...SECURITY_INDICES.map((i) => `-${i}`)].join(',');
      body.expand_wildcards = 'all';
    }
    ctx.progress(0, `taking snapshot ${snap} in repository ${repository}`);
    try {
      await client.request('PUT', `/_snapshot/${enc(repository)}/${enc(snap)}?wait_for_completion=false`, body, { signal: ctx.signal });
    } catch (err) {
      // Without the es_node_index fact every node takes the set's snapshot; the first one wins and the others follow it.
      if (place.taker || esTypeOf(err) !== 'invalid_snapshot_name_exception' || !/same name/.test(messageOf(err))) throw err;
      ctx.log.info(`snapshot ${snap} already exists (another node of the cluster took it for this set); following it`);
    }
    // Recorded now rather than at the end: a part that fails from here on may leave the snapshot
    // in the repository, and removing the set releases it by these facts.
    recordSnapshot(ctx, { repository, location, snapshot: snap, ...(place.taker ? { snapshot_taken_by: ctx.node } : {}), ...cluster });
    const deadline = Date.now() + cfg.snapshot_timeout_seconds * 1000;
    let last: SnapshotInfo | undefined;
    let done: SnapshotInfo | undefined;
    try {
      done = await pollUntil(deadline, { ...POLL, signal: ctx.signal }, async () => {
        last = await client.snapshot(repository, snap, ctx.signal);
        if (last.state === 'IN_PROGRESS' || last.state === 'STARTED' || last.state === 'INIT') {
          ctx.progress(0, `snapshot ${snap}: ${last.state}`);
          return undefined;
        }
        return last;
      });
    } catch (err) {
      if (ctx.signal.aborted) await abortSnapshot(client, repository, snap, ctx.log);
      throw err;
    }
    if (!done) {
      await abortSnapshot(client, repository, snap, ctx.log);
      throw new UnavailableError(`snapshot ${snap} was still ${last?.state ?? 'not visible'} after ${cfg.snapshot_timeout_seconds}s; it was aborted`);
    }
    if (done.state !== 'SUCCESS') {
      throw new PreconditionError(`snapshot ${snap} ended ${done.state}: ${describeFailures(done)}; it stays in repository ${repository} for inspection`);
    }

    await ctx.addTree(FILES, v.configPaths);
    // The snapshot's data is the repository on the shared location, not an artifact of the set:
    // the set's checksums cover this record of it, and verify does not read the repository files.
    const record = {
      format: 'lsbackup-elasticsearch-snapshot/1',
      repository,
      location,
      snapshot: snap,
      uuid: done.uuid ?? '',
      state: done.state,
      indices: [...(done.indices ?? [])].sort(),
      include_global_state: done.include_global_state ?? true,
      shards: done.shards,
      start_time: done.start_time,
      end_time: done.end_time,
      cluster: { key: place.key, nodes: place.nodes, name: info.cluster_name, uuid: info.cluster_uuid, version: info.version?.number, distribution: info.version?.distribution ?? 'elasticsearch' },
      security_plugin: cfg.security_plugin,
    };
    await ctx.addStream(SNAPSHOT_JSON, Readable.from([Buffer.from(JSON.stringify(record, null, 2) + '\n')]));
    Object.assign(ctx.meta, {
      snapshot_uuid: record.uuid,
      indices: String(record.indices.length),
      cluster: info.cluster_name ?? '',
      version: `${record.cluster.distribution} ${record.cluster.version ?? ''}`.trim(),
    });
    return { status: 'ok' as const };
  }

  /**
   * Deletes the part's snapshot before its set is removed. Elasticsearch deletes only the files no
   * other snapshot uses, so the sets that stay keep theirs. A snapshot already gone (404
   * snapshot_missing_exception) counts as deleted. A cluster busy with another operation on it
   * (503 concurrent_snapshot_execution_exception: a restore of that snapshot, or one deletion at a
   * time before 7.8) is not waited for: the set stays and the next prune tries again.
   */
  async function release(ctx: ReleaseContext): Promise<string> {
    // An encrypted set (format 4) keeps the meta encrypted: its clear outside-data key names the
    // snapshot and its location, `<target>/_elasticsearch/<cluster>/`, as recordSnapshot wrote it.
    const [outLocation, outSnap] = snapshotOfKey(ctx.external?.key);
    const snap = ctx.meta.snapshot ?? outSnap ?? '';
    // The API takes comma lists and wildcards: a manifest naming '*' must not delete every snapshot.
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(snap)) throw new InputError(`the elasticsearch part of backup ${ctx.backupId} names no single snapshot ('${snap}')`);
    const clusterOfLocation = outLocation && path.basename(path.dirname(path.resolve(outLocation))) === '_elasticsearch' ? path.basename(path.resolve(outLocation)) : undefined;
    const { repository, location } = repositoryOf(cfg, ctx.setDir, clusterKeyOf(ctx.meta.snapshot ? ctx.meta.es_cluster : clusterOfLocation));
    if (cfg.readonly) throw new PreconditionError(`repository ${repository} is configured readonly on this node: it cannot delete snapshot ${snap}`);
    const { client } = await connect();
    await ensureRepository(cfg, client, repository, location, { nodes: [], follower: false }, ctx.signal, (line) => ctx.log.warn(line));
    try {
      // A deletion runs as long as the files it removes take; it is bounded like a snapshot.
      await deleteSnapshot(client, repository, snap, { signal: ctx.signal, timeoutMs: cfg.snapshot_timeout_seconds * 1000 });
      return `deleted snapshot ${snap} from repository ${repository}`;
    } catch (err) {
      if (esTypeOf(err) !== 'snapshot_missing_exception') throw err;
      return `snapshot ${snap} was already gone from repository ${repository}`;
    }
  }

  async function restore(ctx: RestoreContext) {
    const snap = ctx.part.meta.snapshot;
    if (!snap) throw new InputError(`the elasticsearch part of backup ${ctx.backupId} records no snapshot name`);
    const key = clusterKeyOf(ctx.part.meta.es_cluster);
    const { repository, location } = repositoryOf(cfg, ctx.setDir, key);
    const say = (line: string) => {
      ctx.log.info(line);
      ctx.report(line);
    };
    const { v, client } = await connect();
    const takenBy = ctx.part.meta.snapshot_taken_by;
    if (takenBy && takenBy !== ctx.part.node) {
      say(`this part holds ${ctx.part.node}'s config files; snapshot ${snap} of cluster ${key ?? ''} is restored with ${takenBy}'s part`);
      if (ctx.options.elasticsearch_config === 'true') await restoreFilesThenRun(ctx, { afterRestore: cfg.after_restore_command }, FILES);
      else say(`node config files not restored (option elasticsearch_config=true restores ${v.configPaths.join(', ')})`);
      return;
    }
    if (ctx.part.meta.location && ctx.part.meta.location !== location) say(`snapshot ${snap} was taken into ${ctx.part.meta.location}; reading it from ${location}`);
    const suffix = ctx.options.rename_suffix;
    const closeExisting = ctx.options.close_existing === 'true';
    const globalState = ctx.options.include_global_state === 'true';
    if (globalState && cfg.security_plugin) throw new InputError('include_global_state=true cannot be used with the security plugin: it refuses restores of the global state');

    const place: ClusterPlace = { key, nodes: [], follower: false };
    // path.repo may be edited and the node restarted, then indices closed and restored: from here a cancel waits for the end.
    if (!ctx.dryRun) ctx.changing();
    await ensurePathRepo(cfg, v, client, location, place, ctx.node, ctx.signal, say, ctx.dryRun);
    const registered = await ensureRepository(cfg, client, repository, location, place, ctx.signal, say, ctx.dryRun);
    if (!registered) {
      say(`dry run: would restore snapshot ${snap} from ${location} once the repository is registered`);
      return;
    }
    const info = await client.snapshot(repository, snap, ctx.signal);
    if (info.state !== 'SUCCESS') throw new PreconditionError(`snapshot ${snap} is ${info.state}, not SUCCESS: ${describeFailures(info)}`);
    const available = info.indices ?? [];
    const chosen = chooseIndices(available, ctx.options.indices, cfg.security_plugin, snap);
    const targetOf = (i: string) => (suffix !== undefined ? `${i}${suffix}` : i);
    const existing = await client.catIndices(ctx.signal);
    const clashes = chosen.map(targetOf).filter((t) => existing.has(t));
    if (clashes.length > 0) {
      if (suffix !== undefined) throw new PreconditionError(`indices ${clashes.join(', ')} exist already; choose another rename_suffix (lsbackup never deletes indices)`);
      if (!closeExisting) {
        throw new PreconditionError(
          `refusing to restore over existing indices ${clashes.join(', ')}: choose rename_suffix=<suffix> to restore them side by side, ` +
            `or close_existing=true to close them and restore over them (lsbackup never deletes indices)`,
        );
      }
    }
    const toClose = closeExisting ? clashes.filter((t) => existing.get(t)?.status === 'open') : [];
    const plan = `restore ${chosen.join(', ')} from snapshot ${snap}${suffix !== undefined ? ` as *${suffix}` : ''}${toClose.length ? ` after closing ${toClose.join(', ')}` : ''}`;
    if (ctx.dryRun) {
      say(`dry run: would ${plan}`);
      if (ctx.options.elasticsearch_config === 'true') await restoreFilesThenRun(ctx, { afterRestore: cfg.after_restore_command }, FILES);
      return;
    }
    for (const idx of toClose) {
      say(`closing index ${idx}`);
      await client.request('POST', `/${enc(idx)}/_close`, undefined, { signal: ctx.signal });
    }
    // Security indices present in the snapshot are excluded by name, as the plugin's docs ask;
    // excluding a name the snapshot lacks would be an error.
    const excluded = cfg.security_plugin ? SECURITY_INDICES.filter((s) => available.includes(s)).map((s) => `-${s}`) : [];
    const body: Record<string, unknown> = {
      indices: [...chosen, ...excluded].join(','),
      include_global_state: globalState,
      // Aliases of a renamed copy would also point at the originals and break writes through them.
      include_aliases: suffix === undefined,
    };
    if (suffix !== undefined) {
      body.rename_pattern = '(.+)';
      body.rename_replacement = `$1${suffix}`;
    }
    say(plan);
    await client.request('POST', `/_snapshot/${enc(repository)}/${enc(snap)}/_restore?wait_for_completion=false`, body, { signal: ctx.signal });

    const targets = chosen.map(targetOf);
    const deadline = Date.now() + cfg.restore_timeout_seconds * 1000;
    let pending: string[] = targets;
    const finished = await pollUntil(deadline, { ...POLL, signal: ctx.signal }, async () => {
      const now = await client.catIndices(ctx.signal);
      // A restored index is usable once its primaries are started: yellow or green.
      pending = targets.filter((t) => {
        const row = now.get(t);
        return !row || row.status !== 'open' || (row.health !== 'green' && row.health !== 'yellow');
      });
      ctx.progress(0, `restored ${targets.length - pending.length} of ${targets.length} indices`);
      return pending.length === 0 ? true : undefined;
    });
    if (!finished) {
      throw new UnavailableError(
        `restore of snapshot ${snap} did not finish within ${cfg.restore_timeout_seconds}s: ${pending.join(', ')} still not recovered ` +
          `(see GET _cluster/allocation/explain; a damaged repository file shows there)`,
      );
    }
    say(`restored ${targets.join(', ')} from snapshot ${snap}`);
    if (ctx.options.elasticsearch_config === 'true') await restoreFilesThenRun(ctx, { afterRestore: cfg.after_restore_command }, FILES);
    else say(`node config files not restored (option elasticsearch_config=true restores ${v.configPaths.join(', ')})`);
  }

  /** What `lsbackup agents` shows: the layout found, the cluster, the address and the credentials, and what is wrong with them. */
  async function detect(): Promise<Detection> {
    const { configFile, found } = layoutOf(env, cfg.config_file);
    if (!found) {
      const looked = cfg.config_file ? [cfg.config_file] : LAYOUTS.map((l) => rooted(env, l.configFile));
      return { present: false, detail: `no Elasticsearch or OpenSearch here (looked for ${looked.join(', ')})` };
    }
    const v = await view();
    const name = settingOf(v.config.settings, 'cluster.name');
    const parts = [`${v.layout.product}: ${configFile}${v.config.problem ? ` (${v.config.problem})` : ''}`];
    if (typeof name === 'string' && name) parts.push(`cluster ${name}`);
    parts.push(v.conn.url, describeAuth(v.conn.auth));
    if (!existsSync(v.conn.caFile)) parts.push(`CA ${v.conn.caFile} missing`);
    if (v.conn.auth.kind === 'client_cert') {
      const problem = await certificateProblem(v.conn.auth.certFile);
      if (problem) parts.push(`client certificate ${problem}`);
    }
    return { present: true, detail: parts.join(', ') };
  }

  return {
    name: 'elasticsearch',
    get restorePaths() {
      return configPathsOf(layoutOf(env, cfg.config_file).configFile);
    },
    detect: () => detect().catch((err: unknown) => ({ present: false, detail: messageOf(err) })),
    estimateBytes: async () => duBytes(configPathsOf(layoutOf(env, cfg.config_file).configFile)),
    async health(): Promise<Health> {
      const { v, client } = await connect();
      try {
        const h = await client.health();
        const status = h.status === 'green' ? 'ok' : h.status === 'yellow' ? 'degraded' : 'down';
        return { status, detail: `cluster ${h.cluster_name ? `${h.cluster_name} ` : ''}is ${h.status}` };
      } catch (err) {
        const files = await filesHealth([v.configFile]);
        return { status: 'down', detail: `${messageOf(err)}; ${files.detail}` };
      }
    },
    backup,
    restore,
    release,
  };
}
