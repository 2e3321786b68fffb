import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import YAML, { isSeq, type Document } from 'yaml';
import { z } from 'zod';
import { absolutePath, command } from '../../common/config.js';
import { InputError, LsbackupError, NotFoundError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import { pollUntil } from '../../common/poll.js';
import { duBytes, isInside, writeFileAtomic } from '../../common/fsutil.js';
import { readSecretFile } from '../secrets.js';
import { basicAuthorization, describeNetworkFailure, errorForStatus, httpText, isOk, readSettingFile } from '../http.js';
import type { BackupContext, Component, Detection, Health, ReleaseContext, RestoreContext } from './component.js';
import {
  LAYOUTS,
  certificateProblem,
  configuredCaOf,
  layoutOf,
  nodeUrlOf,
  pathRepoOf,
  readNodeConfig,
  rooted,
  settingOf,
  type Layout,
  type NodeConfig,
  type NodeEnv,
} from './elasticsearch/lambdastack.js';
import { filesHealth, filesSchema, pathList, restoreFilesThenRun } from './files.js';


function isHttpsUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'https:' && !u.username && !u.password;
  } catch {
    return false;
  }
}

export const elasticsearchSchema = z
  .object({
    /**
     * Any node of the cluster; the snapshot and restore APIs act on the whole cluster. Default: this
     * node as LambdaStack binds it, https://<network.host or host name>:<http.port or 9200>.
     */
    url: z.string().refine(isHttpsUrl, 'expected an https:// URL without credentials in it (use username and password_file)').optional(),
    /**
     * The CA that signed the cluster's HTTP certificate; certificates are always checked. Default:
     * the config file's ssl.http.pemtrustedcas_filepath, else /etc/elasticsearch/lambdastack-root-ca.pem
     * (OpenSearch layout: /usr/share/opensearch/config/epiphany-root-ca.pem).
     */
    ca_file: absolutePath.optional(),
    username: z.string().min(1).optional(),
    /** Read at every use, so a rotated password needs no agent restart. */
    password_file: absolutePath.optional(),
    /** Holds `id:api_key` or its base64 form, as the create API key API returns it. */
    api_key_file: absolutePath.optional(),
    /**
     * A client certificate (mTLS) whose DN the security plugin knows, and its key. Without any
     * credentials set, the admin certificate LambdaStack creates is used:
     * /etc/elasticsearch/lambdastack-admin.pem and lambdastack-admin-key.pem.
     */
    client_cert_file: absolutePath.optional(),
    client_key_file: absolutePath.optional(),
    /**
     * The node's config file; it must list the snapshot location in path.repo. Default: LambdaStack's
     * /etc/elasticsearch/elasticsearch.yml, or Epiphany v2's /usr/share/opensearch/config/opensearch.yml
     * where that is the one on the node. Unset, the whole config directory is backed up (as
     * LambdaStack's own backup does: certificates, jvm.options); set, only this file and extra_config_paths.
     */
    config_file: absolutePath.optional(),
    /** More node files to keep beside config_file (jvm.options, certificates). */
    extra_config_paths: pathList.default([]),
    /** The OpenSearch/Open Distro security plugin's config directory (securityconfig/), backed up as files. */
    security_config_dir: absolutePath.optional(),
    /**
     * The cluster runs the OpenSearch/Open Distro security plugin (LambdaStack always does): its
     * index is kept out of snapshots and restores, and a restore never includes the global state.
     */
    security_plugin: z.boolean().default(true),
    /** Default: lsbackup-<es_cluster> (one repository per cluster of the inventory), lsbackup without that fact. */
    repository: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/, 'expected a lowercase repository name')
      .optional(),
    /**
     * Where the fs repository lives; every master and data node must mount it at this same path.
     * Defaults to <target>/_elasticsearch/<es_cluster> beside the backup sets on the shared location
     * (<target>/_elasticsearch without the es_cluster fact).
     */
    repository_location: absolutePath.optional(),
    /** user[:group] Elasticsearch runs as; a repository directory the agent creates is given to it. */
    repository_owner: z.string().min(1).optional(),
    /** Register the repository read-only: for a cluster that restores another cluster's snapshots. */
    readonly: z.boolean().default(false),
    /**
     * Let the agent add the location to path.repo in config_file, then run reload_command: one node
     * at a time (a lock beside the repository on the shared location), with shard allocation held
     * to primaries while the node is down, as LambdaStack's rolling upgrade does.
     */
    allow_config_edit: z.boolean().default(false),
    /** Restarts this node so it reads path.repo (e.g. systemctl restart elasticsearch). */
    reload_command: command.optional(),
    reload_timeout_seconds: z.number().positive().default(300),
    snapshot_timeout_seconds: z.number().positive().default(3600),
    restore_timeout_seconds: z.number().positive().default(3600),
    request_timeout_seconds: z.number().positive().default(60),
    ...filesSchema,
  })
  .strict()
  .refine((c) => [c.username, c.api_key_file, c.client_cert_file].filter(Boolean).length <= 1, {
    message: 'give one of username/password_file, api_key_file or client_cert_file/client_key_file',
    path: ['api_key_file'],
  })
  .refine((c) => !c.username === !c.password_file, { message: 'username and password_file go together', path: ['password_file'] })
  .refine((c) => !c.client_cert_file === !c.client_key_file, { message: 'client_cert_file and client_key_file go together', path: ['client_key_file'] })
  .refine((c) => !c.allow_config_edit || c.reload_command, { message: 'allow_config_edit needs a reload_command: Elasticsearch reads path.repo only at start', path: ['reload_command'] });

type Config = z.output<typeof elasticsearchSchema>;

const FILES = 'files.zip';
const SNAPSHOT_JSON = 'snapshot.json';
/** The security plugin's own index, under its Open Distro and OpenSearch names. */
const SECURITY_INDICES = ['.opendistro_security', '.opensearch_security'];
/** Snapshot, restore and reload progress: asked often at first, then every 5 s. */
const POLL = { everyMs: 250, maxMs: 5000 };

interface EsErrorBody {
  error?: string | { type?: string; reason?: string; root_cause?: { type?: string; reason?: string }[]; caused_by?: { type?: string; reason?: string } };
  status?: number;
}

/** What the cluster answered, kept beside the typed error so callers can react to one error type. */
type EsError = LsbackupError & { esType: string; httpStatus: number };

function esTypeOf(err: unknown): string {
  return (err as Partial<EsError>)?.esType ?? '';
}

interface SnapshotShardFailure {
  index?: string;
  index_uuid?: string;
  shard_id?: number;
  reason?: string;
  node_id?: string;
  status?: string;
}

interface SnapshotInfo {
  snapshot: string;
  uuid?: string;
  state: string;
  reason?: string;
  indices?: string[];
  include_global_state?: boolean;
  start_time?: string;
  end_time?: string;
  failures?: SnapshotShardFailure[];
  shards?: { total: number; failed: number; successful: number };
}

interface ClusterHealth {
  status: string;
  cluster_name?: string;
  number_of_nodes?: number;
  initializing_shards?: number;
  relocating_shards?: number;
}

interface CatIndex {
  index: string;
  status?: string;
  health?: string;
}

/** How the agent reaches the cluster, resolved from the settings and the node at each use. */
interface Connection {
  url: string;
  caFile: string;
  auth: Auth;
  requestTimeoutSeconds: number;
}

type Auth =
  | { kind: 'basic'; username: string; passwordFile: string }
  | { kind: 'api_key'; file: string }
  /** `layout`: LambdaStack's admin certificate, used because no credentials are set. */
  | { kind: 'client_cert'; certFile: string; keyFile: string; layout: boolean }
  | { kind: 'none' };

function describeAuth(auth: Auth): string {
  switch (auth.kind) {
    case 'basic':
      return `user ${auth.username}`;
    case 'api_key':
      return `API key ${auth.file}`;
    case 'client_cert':
      return `client certificate ${auth.certFile}`;
    case 'none':
      return 'no credentials';
  }
}

/** A JSON client for the cluster's REST API over HTTPS with the cluster's CA (agent/http.ts). */
class EsClient {
  private readonly base: URL;

  constructor(private readonly conn: Connection) {
    this.base = new URL(conn.url.endsWith('/') ? conn.url : `${conn.url}/`);
  }

  /** The Authorization header, or the client certificate and key to present. */
  private async credentials(): Promise<{ authorization?: string; cert?: Buffer; key?: Buffer }> {
    const auth = this.conn.auth;
    if (auth.kind === 'basic') {
      const password = await readSecretFile(auth.passwordFile, 'password_file');
      return { authorization: basicAuthorization(auth.username, password) };
    }
    if (auth.kind === 'api_key') {
      const key = (await readSecretFile(auth.file, 'api_key_file')).trim();
      return { authorization: `ApiKey ${key.includes(':') ? Buffer.from(key).toString('base64') : key}` };
    }
    if (auth.kind === 'client_cert') {
      const what = auth.layout ? 'admin client certificate (no credentials set, so LambdaStack\'s)' : 'client_cert_file';
      const cert = await readSettingFile(auth.certFile, what);
      // An expired certificate makes the node drop the handshake with a bare alert; saying so here is clearer.
      const problem = await certificateProblem(auth.certFile);
      if (problem) {
        throw new PermissionError(`${what} ${problem}: renew it (LambdaStack issues its admin certificate until ownca_not_after), or set client_cert_file/client_key_file or username/password_file`);
      }
      const key = await readSettingFile(auth.keyFile, auth.layout ? 'admin client key' : 'client_key_file');
      return { cert, key };
    }
    return {};
  }

  async request<T>(method: string, apiPath: string, body?: unknown, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const url = new URL(apiPath.replace(/^\//, ''), this.base);
    const ca = await readSettingFile(this.conn.caFile, 'ca_file');
    const { authorization, cert, key } = await this.credentials();
    const headers: Record<string, string> = { accept: 'application/json' };
    if (authorization) headers.authorization = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const what = `${method} ${url.pathname}`;
    const res = await httpText({
      method,
      url,
      headers,
      body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
      ca,
      cert,
      key,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? this.conn.requestTimeoutSeconds * 1000,
      networkError: (f) =>
        f.tls
          ? new UnavailableError(`TLS certificate check of ${f.url.host} failed (${f.code}: ${f.message}); is ca_file ${this.conn.caFile} the CA that signed the cluster's HTTP certificate?`)
          : describeNetworkFailure(f),
    });
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      json = undefined;
    }
    if (isOk(res.status)) {
      if (json === undefined) throw new UnavailableError(`${what} on ${this.base.host}: the answer is not JSON: ${res.text.slice(0, 200)}`);
      return json as T;
    }
    throw this.statusError(what, res.status, json as EsErrorBody | undefined, res.text);
  }

  private statusError(what: string, status: number, body: EsErrorBody | undefined, text: string): EsError {
    const e = body?.error;
    const type = typeof e === 'object' ? (e.type ?? '') : '';
    const top = typeof e === 'object' ? (e.reason ?? '') : typeof e === 'string' ? e : text.slice(0, 300);
    // The top-level reason is often a wrapper ("failed to create repository"); the cause says why.
    const cause = typeof e === 'object' ? (e.caused_by?.reason ?? e.root_cause?.[0]?.reason ?? '') : '';
    const reason = cause && cause !== top ? `${top}: ${cause}` : top;
    const hint = status === 401 ? ` (authenticated with ${describeAuth(this.conn.auth)})` : '';
    const message = `${what}: HTTP ${status}${type ? ` ${type}` : ''}: ${reason}${hint}`;
    // A 5xx that names an Elasticsearch error type is the cluster refusing, not the cluster away.
    const err = status >= 500 && type ? new PreconditionError(message) : errorForStatus(status, message);
    return Object.assign(err, { esType: type, httpStatus: status });
  }

  async info(signal?: AbortSignal): Promise<{ name?: string; cluster_name?: string; cluster_uuid?: string; version?: { number?: string; distribution?: string } }> {
    return this.request('GET', '/', undefined, { signal });
  }

  async health(signal?: AbortSignal): Promise<ClusterHealth> {
    return this.request('GET', '/_cluster/health', undefined, { signal });
  }

  async repository(repo: string, signal?: AbortSignal): Promise<{ type: string; settings: Record<string, unknown> } | undefined> {
    try {
      const r = await this.request<Record<string, { type: string; settings: Record<string, unknown> }>>('GET', `/_snapshot/${enc(repo)}`, undefined, { signal });
      return r[repo];
    } catch (err) {
      if (esTypeOf(err) === 'repository_missing_exception') return undefined;
      throw err;
    }
  }

  /** The get snapshot API answers `{snapshots: [...]}`, or `{responses: [{snapshots}]}` on some 7.x releases. */
  async snapshot(repo: string, snap: string, signal?: AbortSignal): Promise<SnapshotInfo> {
    const r = await this.request<{ snapshots?: SnapshotInfo[]; responses?: { snapshots?: SnapshotInfo[]; error?: EsErrorBody['error'] }[] }>(
      'GET',
      `/_snapshot/${enc(repo)}/${enc(snap)}`,
      undefined,
      { signal },
    );
    const list = r.snapshots ?? r.responses?.flatMap((x) => x.snapshots ?? []) ?? [];
    const found = list.find((s) => s.snapshot === snap);
    if (!found) throw new NotFoundError(`snapshot ${snap} is not in repository ${repo}`);
    return found;
  }

  async catIndices(signal?: AbortSignal): Promise<Map<string, CatIndex>> {
    const rows = await this.request<CatIndex[]>('GET', '/_cat/indices?format=json&h=index,status,health&expand_wildcards=all', undefined, { signal });
    return new Map(rows.map((r) => [r.index, r]));
  }
}

function enc(name: string): string {
  return encodeURIComponent(name);
}

/** Snapshot names must be lowercase and unique in the repository; one per backup set. */
export function snapshotNameOf(backupId: string): string {
  return `lsbackup-${backupId.toLowerCase()}`;
}

/**
 * The cluster a part belongs to, as a name safe in repository names and paths: the es_cluster
 * fact (the inventory group, or manifest.yml's cluster_name), recorded in the part's meta so
 * that restore and release, which get no facts, find the same repository.
 */
function clusterKeyOf(raw: string | undefined): string | undefined {
  const key = (raw ?? '').toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[-_]+|-+$/g, '');
  return key || undefined;
}

/**
 * One repository and one location per cluster: two clusters writing one fs repository would
 * corrupt each other's repository index. Settings in agent.yaml win.
 */
function repositoryOf(cfg: Config, setDir: string, key: string | undefined): { repository: string; location: string } {
  const shared = path.join(path.dirname(path.resolve(setDir)), '_elasticsearch');
  return {
    repository: cfg.repository ?? (key ? `lsbackup-${key}` : 'lsbackup'),
    location: cfg.repository_location ?? (key ? path.join(shared, key) : shared),
  };
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

async function resolveOwner(spec: string): Promise<{ uid: number; gid: number }> {
  const [user, group] = spec.split(':');
  const num = async (flag: string, name: string) => (/^\d+$/.test(name) ? Number(name) : Number((await run(['id', flag, name])).stdout.trim()));
  const uid = await num('-u', user!);
  const gid = group ? (/^\d+$/.test(group) ? Number(group) : Number((await run(['getent', 'group', group])).stdout.split(':')[2])) : await num('-g', user!);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new InputError(`repository_owner '${spec}': cannot resolve it to a uid and gid`);
  return { uid, gid };
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
function chooseIndices(available: string[], requested: string | undefined, security: boolean, snap: string): string[] {
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

function describeFailures(info: SnapshotInfo): string {
  const shards = (info.failures ?? []).map((f) => `index ${f.index ?? '?'} shard ${f.shard_id ?? '?'}${f.node_id ? ` on node ${f.node_id}` : ''}: ${f.reason ?? 'no reason given'}`);
  const counts = info.shards ? ` (${info.shards.failed} of ${info.shards.total} shards failed)` : '';
  return `${shards.join('; ') || info.reason || 'no failure details'}${counts}`;
}

/** What this node says of itself right now: its layout, config file and how to reach the cluster. */
interface NodeView {
  layout: Layout;
  configFile: string;
  config: NodeConfig;
  conn: Connection;
  /** Files and directories kept beside the snapshot. */
  configPaths: string[];
}

/** What a backup knows of the cluster from the build directory (BackupContext.facts). */
interface ClusterPlace {
  key?: string;
  nodes: string[];
  /** Set when the facts say which node takes the cluster's snapshot: the one with es_node_index 0. */
  taker?: string;
  follower: boolean;
}

function placeOf(facts: Record<string, string>): ClusterPlace {
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

/**
 * A snapshot of the whole cluster into a shared-filesystem repository (one per cluster), plus
 * the node's config files. The snapshot data stays in the repository on the shared location; the
 * set records which snapshot belongs to it, and removing the set deletes that snapshot (release).
 * With the es_node_index fact exactly one node of a cluster takes the snapshot (index 0); the
 * others keep their config files and record that the snapshot is in that node's part.
 * `env` only redirects where the node's files are looked for (tests).
 */
export function elasticsearch(cfg: Config, env: NodeEnv = {}): Component {
  function configPathsOf(configFile: string): string[] {
    // A config file found by layout brings its directory, as LambdaStack's backup keeps /etc/elasticsearch/.
    const base = cfg.config_file ? [cfg.config_file] : [path.dirname(configFile)];
    return [...new Set([...base, ...cfg.extra_config_paths, ...(cfg.security_config_dir ? [cfg.security_config_dir] : [])])];
  }

  async function view(): Promise<NodeView> {
    const { layout, configFile, found } = layoutOf(env, cfg.config_file);
    const config: NodeConfig = found ? await readNodeConfig(configFile) : { problem: 'ENOENT' };
    const url = cfg.url ?? nodeUrlOf(config.settings, env).url;
    const caFile = cfg.ca_file ?? configuredCaOf(config.settings, layout, configFile, env) ?? rooted(env, layout.caFile);
    const auth: Auth =
      cfg.username && cfg.password_file
        ? { kind: 'basic', username: cfg.username, passwordFile: cfg.password_file }
        : cfg.api_key_file
          ? { kind: 'api_key', file: cfg.api_key_file }
          : cfg.client_cert_file && cfg.client_key_file
            ? { kind: 'client_cert', certFile: cfg.client_cert_file, keyFile: cfg.client_key_file, layout: false }
            : { kind: 'client_cert', certFile: rooted(env, layout.adminCertFile), keyFile: rooted(env, layout.adminKeyFile), layout: true };
    return { layout, configFile, config, conn: { url, caFile, auth, requestTimeoutSeconds: cfg.request_timeout_seconds }, configPaths: configPathsOf(configFile) };
  }

  async function connect(): Promise<{ v: NodeView; client: EsClient }> {
    const v = await view();
    return { v, client: new EsClient(v.conn) };
  }

  async function waitForCluster(client: EsClient, what: string, signal: AbortSignal, ready: (h: ClusterHealth) => boolean): Promise<ClusterHealth> {
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
  async function oneNodeAtATime(client: EsClient, location: string, place: ClusterPlace, node: string, signal: AbortSignal, say: (line: string) => void, restart: () => Promise<void>): Promise<void> {
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
      const before = await waitForCluster(client, 'the cluster was not whole and settled before restarting this node', signal, (h) => whole(h) && !h.initializing_shards && !h.relocating_shards);
      await client.request('PUT', '/_cluster/settings', { persistent: { 'cluster.routing.allocation.enable': 'primaries' } }, { signal });
      // Optional, as in LambdaStack's upgrade: a flush speeds up shard recovery after the restart.
      await client.request('POST', '/_flush', undefined, { signal }).catch((err) => say(`flush before restart failed (${messageOf(err)}); restarting anyway`));
      try {
        await restart();
        await waitForCluster(client, `after ${cfg.reload_command!.join(' ')} the node did not rejoin the cluster`, signal, whole);
      } finally {
        await client
          .request('PUT', '/_cluster/settings', { persistent: { 'cluster.routing.allocation.enable': null } }, { signal })
          .catch((err) => say(`could not re-enable shard allocation (${messageOf(err)}): PUT _cluster/settings {"persistent":{"cluster.routing.allocation.enable":null}} by hand`));
      }
      const back = before.status === 'green' ? ['green'] : ['green', 'yellow'];
      await waitForCluster(client, `the cluster did not get back to ${before.status} after restarting this node`, signal, (h) => whole(h) && back.includes(h.status));
    } finally {
      await fsp.rm(lock, { force: true });
    }
  }

  /**
   * Makes sure this node's path.repo covers the location. Refused, it says in one line which
   * file, what path.repo holds and what it must hold; allowed, it edits and restarts in turn.
   */
  async function ensurePathRepo(v: NodeView, client: EsClient, location: string, place: ClusterPlace, node: string, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<void> {
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
    await oneNodeAtATime(client, location, place, node, signal, say, async () => {
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

  /** Registers the fs repository unless it is registered already as wanted. */
  async function ensureRepository(client: EsClient, repository: string, location: string, place: ClusterPlace, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<boolean> {
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

  /**
   * Every node's part names the cluster's snapshot and declares it as data outside the set, under
   * one key: any node of the cluster can delete it, and a set that stays and names it keeps it.
   */
  function recordSnapshot(ctx: BackupContext, meta: { repository: string; location: string; snapshot: string } & Record<string, string>): void {
    Object.assign(ctx.meta, meta);
    const { repository, location, snapshot } = meta;
    ctx.declareExternal({ key: JSON.stringify([location, snapshot]), what: `Elasticsearch snapshot ${snapshot} in repository ${repository} (${location})`, byHand: `DELETE /_snapshot/${repository}/${snapshot}` });
  }

  async function backup(ctx: BackupContext) {
    const place = placeOf(ctx.facts);
    const { repository, location } = repositoryOf(cfg, ctx.setDir, place.key);
    if (cfg.readonly) throw new InputError(`repository ${repository} is configured readonly: this cluster restores snapshots but cannot take them`);
    const { v, client } = await connect();
    const say = (line: string) => ctx.log.warn(line);
    // Every node, the snapshot taker or not: the shared repository must be in each one's path.repo.
    await ensurePathRepo(v, client, location, place, ctx.node, ctx.signal, say);
    const snap = snapshotNameOf(ctx.backupId);
    const cluster: Record<string, string> = place.key ? { es_cluster: place.key } : {};
    if (place.follower) {
      await ctx.addZip(FILES, v.configPaths);
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
    await ensureRepository(client, repository, location, place, ctx.signal, say);
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

    await ctx.addZip(FILES, v.configPaths);
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

  /** Through the API, never by removing files: the repository's index files must stay consistent. */
  async function deleteSnapshot(client: EsClient, repository: string, snap: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    await client.request('DELETE', `/_snapshot/${enc(repository)}/${enc(snap)}`, undefined, opts);
  }

  async function abortSnapshot(client: EsClient, repository: string, snap: string, log: BackupContext['log']): Promise<void> {
    // Deleting a running snapshot is how the API aborts it; a stuck one would block later snapshots.
    await deleteSnapshot(client, repository, snap).catch((err) => log.warn(`could not abort snapshot ${snap}: ${messageOf(err)}`));
  }

  /**
   * Deletes the part's snapshot before its set is removed. Elasticsearch deletes only the files no
   * other snapshot uses, so the sets that stay keep theirs. A snapshot already gone (404
   * snapshot_missing_exception) counts as deleted. A cluster busy with another operation on it
   * (503 concurrent_snapshot_execution_exception: a restore of that snapshot, or one deletion at a
   * time before 7.8) is not waited for: the set stays and the next prune tries again.
   */
  async function release(ctx: ReleaseContext): Promise<string> {
    const snap = ctx.meta.snapshot ?? '';
    // The API takes comma lists and wildcards: a manifest naming '*' must not delete every snapshot.
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(snap)) throw new InputError(`the elasticsearch part of backup ${ctx.backupId} names no single snapshot ('${snap}')`);
    const { repository, location } = repositoryOf(cfg, ctx.setDir, clusterKeyOf(ctx.meta.es_cluster));
    if (cfg.readonly) throw new PreconditionError(`repository ${repository} is configured readonly on this node: it cannot delete snapshot ${snap}`);
    const { client } = await connect();
    await ensureRepository(client, repository, location, { nodes: [], follower: false }, ctx.signal, (line) => ctx.log.warn(line));
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
    if (suffix !== undefined && !/^[a-z0-9_.+-]+$/.test(suffix)) throw new InputError(`rename_suffix '${suffix}': use lowercase letters, digits and _ . + - only`);
    if (suffix !== undefined && closeExisting) throw new InputError('give rename_suffix or close_existing=true, not both');
    const globalState = ctx.options.include_global_state === 'true';
    if (globalState && cfg.security_plugin) throw new InputError('include_global_state=true cannot be used with the security plugin: it refuses restores of the global state');

    const place: ClusterPlace = { key, nodes: [], follower: false };
    await ensurePathRepo(v, client, location, place, ctx.node, ctx.signal, say, ctx.dryRun);
    const registered = await ensureRepository(client, repository, location, place, ctx.signal, say, ctx.dryRun);
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
