import { promises as fsp } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import YAML, { isSeq, type Document } from 'yaml';
import { z } from 'zod';
import { command } from '../../common/config.js';
import { InputError, LsbackupError, NotFoundError, PermissionError, PreconditionError, UnavailableError, messageOf } from '../../common/errors.js';
import { run } from '../../common/exec.js';
import { pollUntil } from '../../common/poll.js';
import { duBytes, isInside, writeFileAtomic } from '../../common/fsutil.js';
import type { BackupContext, Component, Health, ReleaseContext, RestoreContext } from './component.js';
import { detectPaths, filesHealth, filesSchema, pathList, restoreFilesThenRun } from './files.js';

const absolutePath = z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path');

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
    /** Any node of the cluster; the snapshot and restore APIs act on the whole cluster. */
    url: z.string().refine(isHttpsUrl, 'expected an https:// URL without credentials in it (use username and password_file)').default('https://localhost:9200'),
    /** The CA that signed the cluster's HTTP certificate. Certificates are always checked. */
    ca_file: absolutePath,
    username: z.string().min(1).optional(),
    /** Read at every use, so a rotated password needs no agent restart. */
    password_file: absolutePath.optional(),
    /** Holds `id:api_key` or its base64 form, as the create API key API returns it. */
    api_key_file: absolutePath.optional(),
    /** The node's elasticsearch.yml; it must list the snapshot location in path.repo. */
    config_file: absolutePath.default('/etc/elasticsearch/elasticsearch.yml'),
    /** More node files to keep beside config_file (jvm.options, certificates). */
    extra_config_paths: pathList.default([]),
    /** The OpenSearch/Open Distro security plugin's config directory (securityconfig/), backed up as files. */
    security_config_dir: absolutePath.optional(),
    /**
     * The cluster runs the OpenSearch/Open Distro security plugin: its index is kept out of
     * snapshots and restores, and a restore never includes the global state.
     */
    security_plugin: z.boolean().default(false),
    repository: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]*$/, 'expected a lowercase repository name')
      .default('lsbackup'),
    /**
     * Where the fs repository lives; every master and data node must mount it at this same path.
     * Defaults to `_elasticsearch` beside the backup sets on the shared location (<target>/_elasticsearch).
     */
    repository_location: absolutePath.optional(),
    /** user[:group] Elasticsearch runs as; a repository directory the agent creates is given to it. */
    repository_owner: z.string().min(1).optional(),
    /** Register the repository read-only: for a cluster that restores another cluster's snapshots. */
    readonly: z.boolean().default(false),
    /** Let the agent add the location to path.repo in config_file, then run reload_command. */
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
  .refine((c) => !(c.username && c.api_key_file), { message: 'give username/password_file or api_key_file, not both', path: ['api_key_file'] })
  .refine((c) => !c.username === !c.password_file, { message: 'username and password_file go together', path: ['password_file'] })
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

interface CatIndex {
  index: string;
  status?: string;
  health?: string;
}

/**
 * A JSON client for the cluster's REST API over HTTPS with the cluster's CA. node:https rather
 * than fetch: Node 20's fetch cannot take a CA per request without undici as a dependency.
 */
class EsClient {
  private readonly base: URL;

  constructor(private readonly cfg: Config) {
    this.base = new URL(cfg.url.endsWith('/') ? cfg.url : `${cfg.url}/`);
  }

  private async readSecret(file: string, what: string): Promise<string> {
    try {
      return (await fsp.readFile(file, 'utf8')).replace(/\r?\n$/, '');
    } catch (err) {
      throw new InputError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
  }

  private async authorization(): Promise<string | undefined> {
    if (this.cfg.username && this.cfg.password_file) {
      const password = await this.readSecret(this.cfg.password_file, 'password_file');
      return `Basic ${Buffer.from(`${this.cfg.username}:${password}`).toString('base64')}`;
    }
    if (this.cfg.api_key_file) {
      const key = (await this.readSecret(this.cfg.api_key_file, 'api_key_file')).trim();
      return `ApiKey ${key.includes(':') ? Buffer.from(key).toString('base64') : key}`;
    }
    return undefined;
  }

  async request<T>(method: string, apiPath: string, body?: unknown, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<T> {
    const url = new URL(apiPath.replace(/^\//, ''), this.base);
    let ca: Buffer;
    try {
      ca = await fsp.readFile(this.cfg.ca_file);
    } catch (err) {
      throw new InputError(`ca_file ${this.cfg.ca_file}: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
    const auth = await this.authorization();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (auth) headers.authorization = auth;
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const timeoutMs = opts.timeoutMs ?? this.cfg.request_timeout_seconds * 1000;
    const what = `${method} ${url.pathname}`;
    const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(url, { method, headers, ca, signal: opts.signal, timeout: timeoutMs }, (r: IncomingMessage) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        r.on('error', (err) => reject(this.networkError(err, what)));
      });
      req.on('timeout', () => req.destroy(new UnavailableError(`${this.base.host} sent nothing for ${timeoutMs / 1000}s (${what})`)));
      req.on('error', (err) => reject(this.networkError(err, what)));
      req.end(payload);
    });
    let json: unknown;
    try {
      json = res.text ? JSON.parse(res.text) : {};
    } catch {
      json = undefined;
    }
    if (res.status >= 200 && res.status < 300) {
      if (json === undefined) throw new UnavailableError(`${what} on ${this.base.host}: the answer is not JSON: ${res.text.slice(0, 200)}`);
      return json as T;
    }
    throw this.statusError(what, res.status, json as EsErrorBody | undefined, res.text);
  }

  private networkError(err: Error, what: string): Error {
    if (err instanceof LsbackupError) return err;
    if (err.name === 'AbortError') return new LsbackupError(`${what} cancelled`);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    // Certificate failures are reported as such and never retried without verification.
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS/.test(code)) {
      return new UnavailableError(`TLS certificate check of ${this.base.host} failed (${code}: ${err.message}); is ca_file ${this.cfg.ca_file} the CA that signed the cluster's HTTP certificate?`);
    }
    if (code === 'ECONNREFUSED') return new UnavailableError(`nothing answers at ${this.base.origin} (connection refused; ${what})`);
    return new UnavailableError(`${what} on ${this.base.host}: ${code ? `${code}: ` : ''}${err.message}`);
  }

  private statusError(what: string, status: number, body: EsErrorBody | undefined, text: string): EsError {
    const e = body?.error;
    const type = typeof e === 'object' ? (e.type ?? '') : '';
    const top = typeof e === 'object' ? (e.reason ?? '') : typeof e === 'string' ? e : text.slice(0, 300);
    // The top-level reason is often a wrapper ("failed to create repository"); the cause says why.
    const cause = typeof e === 'object' ? (e.caused_by?.reason ?? e.root_cause?.[0]?.reason ?? '') : '';
    const reason = cause && cause !== top ? `${top}: ${cause}` : top;
    const message = `${what}: HTTP ${status}${type ? ` ${type}` : ''}: ${reason}`;
    const err: LsbackupError =
      status === 401 || status === 403
        ? new PermissionError(message)
        : status === 404
          ? new NotFoundError(message)
          : status >= 500 && !type
            ? new UnavailableError(message)
            : new PreconditionError(message);
    return Object.assign(err, { esType: type, httpStatus: status });
  }

  async info(signal?: AbortSignal): Promise<{ name?: string; cluster_name?: string; cluster_uuid?: string; version?: { number?: string; distribution?: string } }> {
    return this.request('GET', '/', undefined, { signal });
  }

  async health(signal?: AbortSignal): Promise<{ status: string; cluster_name?: string }> {
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

/** Where the repository lives when the config does not say: beside the sets on the shared location. */
function locationOf(cfg: Config, setDir: string): string {
  return cfg.repository_location ?? path.join(path.dirname(path.resolve(setDir)), '_elasticsearch');
}

/** path.repo as a node reads it: a flat or nested key, a list or a comma-separated string. */
function pathRepoOf(settings: unknown): string[] {
  const s = (settings ?? {}) as Record<string, unknown>;
  const nested = s.path && typeof s.path === 'object' ? (s.path as Record<string, unknown>).repo : undefined;
  const out: string[] = [];
  for (const v of [s['path.repo'], nested]) {
    if (typeof v === 'string') out.push(...v.split(',').map((x) => x.trim()).filter(Boolean));
    else if (Array.isArray(v)) out.push(...v.filter((x): x is string => typeof x === 'string'));
  }
  return out;
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

/**
 * The seed's step 1: a snapshot of the whole cluster into a shared-filesystem repository, plus
 * the node's elasticsearch.yml (and security plugin config) as files. The snapshot data stays in
 * the repository on the shared location; the set records which snapshot belongs to it, and
 * removing the set deletes that snapshot (release).
 */
export function elasticsearch(cfg: Config): Component {
  const client = new EsClient(cfg);
  const configPaths = [...new Set([cfg.config_file, ...cfg.extra_config_paths, ...(cfg.security_config_dir ? [cfg.security_config_dir] : [])])];

  /** Makes sure this node's path.repo covers the location, editing it only when allowed. */
  async function ensurePathRepo(location: string, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<void> {
    let text: string;
    try {
      text = await fsp.readFile(cfg.config_file, 'utf8');
    } catch (err) {
      throw new PreconditionError(`cannot read ${cfg.config_file} to check path.repo: ${(err as NodeJS.ErrnoException).code ?? messageOf(err)}`);
    }
    const doc = YAML.parseDocument(text);
    if (doc.errors.length > 0) throw new PreconditionError(`${cfg.config_file} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    const repos = pathRepoOf(doc.toJS());
    if (repos.some((r) => path.isAbsolute(r) && isInside(path.resolve(r), location))) return;
    const fix = `path.repo: ["${location}"]`;
    if (!cfg.allow_config_edit) {
      throw new PreconditionError(
        `${cfg.config_file} has no path.repo covering the snapshot location ${location} (it has: ${repos.join(', ') || 'none'}); ` +
          `add ${fix} on every master and data node and restart them, or set allow_config_edit: true with a reload_command`,
      );
    }
    if (dryRun) {
      say(`dry run: would add ${location} to path.repo in ${cfg.config_file} and run ${cfg.reload_command!.join(' ')}`);
      return;
    }
    addPathRepo(doc, location);
    const st = await fsp.stat(cfg.config_file);
    await writeFileAtomic(cfg.config_file, doc.toString(), st.mode & 0o7777);
    await fsp.chown(cfg.config_file, st.uid, st.gid);
    say(`added ${location} to path.repo in ${cfg.config_file}; running ${cfg.reload_command!.join(' ')}`);
    await run(cfg.reload_command!, { signal });
    // A restarted node answers before it has joined the cluster; wait until the cluster is usable.
    const deadline = Date.now() + cfg.reload_timeout_seconds * 1000;
    let last = '';
    const up = await pollUntil(deadline, { ...POLL, signal: signal }, async () => {
      try {
        const h = await client.health(signal);
        return h.status === 'green' || h.status === 'yellow' ? true : ((last = `cluster health ${h.status}`), undefined);
      } catch (err) {
        last = messageOf(err);
        return undefined;
      }
    });
    if (!up) throw new UnavailableError(`after ${cfg.reload_command!.join(' ')} the cluster was not usable within ${cfg.reload_timeout_seconds}s: ${last}`);
  }

  /** Registers the fs repository unless it is registered already as wanted. */
  async function ensureRepository(location: string, signal: AbortSignal, say: (line: string) => void, dryRun = false): Promise<boolean> {
    const current = await client.repository(cfg.repository, signal);
    const want = { location, readonly: cfg.readonly };
    if (current && current.type === 'fs' && current.settings.location === location && String(current.settings.readonly ?? false) === String(cfg.readonly)) return true;
    if (dryRun) {
      say(`dry run: would register repository ${cfg.repository} (fs, ${JSON.stringify(want)})`);
      return false;
    }
    if (current) say(`repository ${cfg.repository} is registered as ${current.type} ${JSON.stringify(current.settings)}; re-registering it at ${location}`);
    if (!cfg.readonly) {
      const created = await fsp.mkdir(location, { recursive: true, mode: 0o700 });
      if (created && cfg.repository_owner) {
        const { uid, gid } = await resolveOwner(cfg.repository_owner);
        await fsp.chown(location, uid, gid);
      }
    }
    const settings: Record<string, unknown> = { location };
    if (cfg.readonly) settings.readonly = true;
    try {
      await client.request('PUT', `/_snapshot/${enc(cfg.repository)}`, { type: 'fs', settings }, { signal });
    } catch (err) {
      if (esTypeOf(err) !== 'repository_verification_exception') throw err;
      throw new PreconditionError(
        `${messageOf(err)} (every master and data node must be able to write ${location} as the user Elasticsearch runs as; repository_owner makes the agent give it the directory it creates)`,
      );
    }
    return true;
  }

  async function backup(ctx: BackupContext) {
    if (cfg.readonly) throw new InputError(`repository ${cfg.repository} is configured readonly: this cluster restores snapshots but cannot take them`);
    const location = locationOf(cfg, ctx.setDir);
    const info = await client.info(ctx.signal);
    const say = (line: string) => ctx.log.warn(line);
    await ensurePathRepo(location, ctx.signal, say);
    await ensureRepository(location, ctx.signal, say);
    const snap = snapshotNameOf(ctx.backupId);
    const body: Record<string, unknown> = { include_global_state: true, metadata: { taken_by: 'lsbackup', backup_id: ctx.backupId, node: ctx.node } };
    if (cfg.security_plugin) {
      // The security index holds credentials; the plugin's docs advise keeping it out of snapshots.
      body.indices = ['*', ...SECURITY_INDICES.map((i) => `-${i}`)].join(',');
      body.expand_wildcards = 'all';
    }
    ctx.progress(0, `taking snapshot ${snap} in repository ${cfg.repository}`);
    try {
      await client.request('PUT', `/_snapshot/${enc(cfg.repository)}/${enc(snap)}?wait_for_completion=false`, body, { signal: ctx.signal });
    } catch (err) {
      // Every node running this component takes the set's snapshot; the first one wins and the others follow it.
      if (esTypeOf(err) !== 'invalid_snapshot_name_exception' || !/same name/.test(messageOf(err))) throw err;
      ctx.log.info(`snapshot ${snap} already exists (another node of the cluster took it for this set); following it`);
    }
    // Recorded now rather than at the end: a part that fails from here on may leave the snapshot
    // in the repository, and removing the set releases it by these facts.
    Object.assign(ctx.meta, { repository: cfg.repository, location, snapshot: snap });
    const deadline = Date.now() + cfg.snapshot_timeout_seconds * 1000;
    let last: SnapshotInfo | undefined;
    let done: SnapshotInfo | undefined;
    try {
      done = await pollUntil(deadline, { ...POLL, signal: ctx.signal }, async () => {
        last = await client.snapshot(cfg.repository, snap, ctx.signal);
        if (last.state === 'IN_PROGRESS' || last.state === 'STARTED' || last.state === 'INIT') {
          ctx.progress(0, `snapshot ${snap}: ${last.state}`);
          return undefined;
        }
        return last;
      });
    } catch (err) {
      if (ctx.signal.aborted) await abortSnapshot(snap, ctx.log);
      throw err;
    }
    if (!done) {
      await abortSnapshot(snap, ctx.log);
      throw new UnavailableError(`snapshot ${snap} was still ${last?.state ?? 'not visible'} after ${cfg.snapshot_timeout_seconds}s; it was aborted`);
    }
    if (done.state !== 'SUCCESS') {
      throw new PreconditionError(`snapshot ${snap} ended ${done.state}: ${describeFailures(done)}; it stays in repository ${cfg.repository} for inspection`);
    }

    await ctx.addZip(FILES, configPaths);
    // The snapshot's data is the repository on the shared location, not an artifact of the set:
    // the set's checksums cover this record of it, and verify does not read the repository files.
    const record = {
      format: 'lsbackup-elasticsearch-snapshot/1',
      repository: cfg.repository,
      location,
      snapshot: snap,
      uuid: done.uuid ?? '',
      state: done.state,
      indices: [...(done.indices ?? [])].sort(),
      include_global_state: done.include_global_state ?? true,
      shards: done.shards,
      start_time: done.start_time,
      end_time: done.end_time,
      cluster: { name: info.cluster_name, uuid: info.cluster_uuid, version: info.version?.number, distribution: info.version?.distribution ?? 'elasticsearch' },
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
  async function deleteSnapshot(snap: string, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    await client.request('DELETE', `/_snapshot/${enc(cfg.repository)}/${enc(snap)}`, undefined, opts);
  }

  async function abortSnapshot(snap: string, log: BackupContext['log']): Promise<void> {
    // Deleting a running snapshot is how the API aborts it; a stuck one would block later snapshots.
    await deleteSnapshot(snap).catch((err) => log.warn(`could not abort snapshot ${snap}: ${messageOf(err)}`));
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
    if (cfg.readonly) throw new PreconditionError(`repository ${cfg.repository} is configured readonly on this node: it cannot delete snapshot ${snap}`);
    await ensureRepository(locationOf(cfg, ctx.setDir), ctx.signal, (line) => ctx.log.warn(line));
    try {
      // A deletion runs as long as the files it removes take; it is bounded like a snapshot.
      await deleteSnapshot(snap, { signal: ctx.signal, timeoutMs: cfg.snapshot_timeout_seconds * 1000 });
      return `deleted snapshot ${snap} from repository ${cfg.repository}`;
    } catch (err) {
      if (esTypeOf(err) !== 'snapshot_missing_exception') throw err;
      return `snapshot ${snap} was already gone from repository ${cfg.repository}`;
    }
  }

  async function restore(ctx: RestoreContext) {
    const snap = ctx.part.meta.snapshot;
    if (!snap) throw new InputError(`the elasticsearch part of backup ${ctx.backupId} records no snapshot name`);
    const location = locationOf(cfg, ctx.setDir);
    const say = (line: string) => {
      ctx.log.info(line);
      ctx.report(line);
    };
    if (ctx.part.meta.location && ctx.part.meta.location !== location) say(`snapshot ${snap} was taken into ${ctx.part.meta.location}; reading it from ${location}`);
    const suffix = ctx.options.rename_suffix;
    const closeExisting = ctx.options.close_existing === 'true';
    if (suffix !== undefined && !/^[a-z0-9_.+-]+$/.test(suffix)) throw new InputError(`rename_suffix '${suffix}': use lowercase letters, digits and _ . + - only`);
    if (suffix !== undefined && closeExisting) throw new InputError('give rename_suffix or close_existing=true, not both');
    const globalState = ctx.options.include_global_state === 'true';
    if (globalState && cfg.security_plugin) throw new InputError('include_global_state=true cannot be used with the security plugin: it refuses restores of the global state');

    await ensurePathRepo(location, ctx.signal, say, ctx.dryRun);
    const registered = await ensureRepository(location, ctx.signal, say, ctx.dryRun);
    if (!registered) {
      say(`dry run: would restore snapshot ${snap} from ${location} once the repository is registered`);
      return;
    }
    const info = await client.snapshot(cfg.repository, snap, ctx.signal);
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
    await client.request('POST', `/_snapshot/${enc(cfg.repository)}/${enc(snap)}/_restore?wait_for_completion=false`, body, { signal: ctx.signal });

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
    else say(`node config files not restored (option elasticsearch_config=true restores ${configPaths.join(', ')})`);
  }

  return {
    name: 'elasticsearch',
    restorePaths: configPaths,
    detect: () => detectPaths('Elasticsearch', [cfg.config_file]),
    estimateBytes: () => duBytes(configPaths),
    async health(): Promise<Health> {
      try {
        const h = await client.health();
        const status = h.status === 'green' ? 'ok' : h.status === 'yellow' ? 'degraded' : 'down';
        return { status, detail: `cluster ${h.cluster_name ? `${h.cluster_name} ` : ''}is ${h.status}` };
      } catch (err) {
        const files = await filesHealth([cfg.config_file]);
        return { status: 'down', detail: `${messageOf(err)}; ${files.detail}` };
      }
    },
    backup,
    restore,
    release,
  };
}
