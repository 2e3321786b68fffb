/**
 * A small stand-in for an Elasticsearch/OpenSearch node, for tests: no cluster can be installed
 * here. It follows the documented REST API for what lsbackup uses (snapshot repositories,
 * snapshots, restore, a few index and _cat APIs), answers with the documented shapes and error
 * types, serves HTTPS and requires basic auth or, as the security plugin does, a client
 * certificate whose DN the config's authcz.admin_dn lists. Indices live in memory; a snapshot writes real
 * files into the repository directory and a restore reads them back (checking their checksums),
 * so a test can damage the repository and see the restore fail. path.repo is read from the
 * elasticsearch.yml it is given, at start and at each "restart" (when restartFlag appears); with
 * moreNodes, a repository registers only where every node's path.repo covers it.
 */
import { X509Certificate, createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, promises as fsp, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import YAML from 'yaml';

export interface Pki {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** With `lambdastack`: the admin client certificate and key, and its DN as authcz.admin_dn names it. */
  adminCertFile?: string;
  adminKeyFile?: string;
  adminDn?: string;
}

export interface PkiOptions {
  /** Names the node certificate is for (default localhost); with `lambdastack`, never localhost. */
  hosts?: string[];
  ips?: string[];
  /**
   * Files and subjects as LambdaStack's opendistro_for_elasticsearch role makes them
   * (defaults/main.yml, tasks/generate-certs.yml): lambdastack-root-ca.pem, lambdastack-admin.pem
   * and -key.pem, lambdastack-node-<host>.pem, O=LambdaStack, OU=R&D.
   */
  lambdastack?: boolean;
}

/** A throwaway CA and a server certificate signed by it (and, LambdaStack-style, an admin client certificate), made with the openssl CLI. */
export function makePki(dir: string, opts: PkiOptions = {}): Pki {
  mkdirSync(dir, { recursive: true });
  const f = (n: string) => path.join(dir, n);
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ls = opts.lambdastack === true;
  const hosts = opts.hosts ?? ['localhost'];
  const ips = opts.ips ?? (ls ? [] : ['127.0.0.1']);
  const names = ls
    ? { ca: 'lambdastack-root-ca.pem', caKey: 'lambdastack-root-ca-key.pem', node: `lambdastack-node-${hosts[0]}.pem`, nodeKey: `lambdastack-node-${hosts[0]}-key.pem`, admin: 'lambdastack-admin.pem', adminKey: 'lambdastack-admin-key.pem' }
    : { ca: 'ca.pem', caKey: 'ca.key', node: 'node.pem', nodeKey: 'node.key', admin: 'admin.pem', adminKey: 'admin.key' };
  const subject = (cn: string) => (ls ? `/O=LambdaStack/OU=R&D/CN=${cn}` : `/CN=${cn}`);
  ossl('req', '-x509', ...ec, '-keyout', f(names.caKey), '-out', f(names.ca), '-days', '2', '-subj', subject(ls ? 'LambdaStack Managed ODFE Root CA' : 'lsbackup test CA'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const sign = (name: string, key: string, subj: string, ext: string) => {
    ossl('req', ...ec, '-keyout', f(key), '-out', f(`${name}.csr`), '-subj', subj);
    writeFileSync(f(`${name}.ext`), ext);
    ossl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f(names.ca), '-CAkey', f(names.caKey), '-CAcreateserial', '-out', f(name), '-days', '2', '-extfile', f(`${name}.ext`));
  };
  const san = [...hosts.map((h) => `DNS:${h}`), ...ips.map((i) => `IP:${i}`)].join(',');
  sign(names.node, names.nodeKey, subject(hosts[0]!), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  const pki: Pki = { caFile: f(names.ca), certFile: f(names.node), keyFile: f(names.nodeKey) };
  if (ls) {
    sign(names.admin, names.adminKey, subject('LambdaStack Admin'), 'extendedKeyUsage=clientAuth\n');
    Object.assign(pki, { adminCertFile: f(names.admin), adminKeyFile: f(names.adminKey), adminDn: 'CN=LambdaStack Admin,OU=R&D,O=LambdaStack' });
  }
  return pki;
}

export interface FakeEsOptions {
  configFile: string;
  pki: Pki;
  users: Record<string, string>;
  /** When this file appears the node "restarts": it re-reads path.repo from configFile. */
  restartFlag?: string;
  clusterName?: string;
  distribution?: 'opensearch' | 'elasticsearch';
  /** The security plugin: its index exists, and restores of it or of the global state are refused. */
  securityPlugin?: boolean;
  /** Where it listens (default 127.0.0.1) and the host name its url uses (default localhost). */
  listen?: { host?: string; port?: number; urlHost?: string };
  /**
   * The cluster's other nodes, each with its own config file: a repository registers only when
   * every node's path.repo covers its location, and restartFlag re-reads that node's file.
   */
  moreNodes?: { name: string; configFile: string; restartFlag?: string }[];
  /** How long a snapshot stays IN_PROGRESS, and a restored index red, before the work is done. */
  snapshotDelayMs?: number;
  restoreDelayMs?: number;
}

interface Index {
  uuid: string;
  state: 'open' | 'close';
  shards: number;
  docs: Map<string, unknown>;
  aliases: string[];
  /** Primaries not started: a restore in progress or one that failed. */
  red: boolean;
  recoveryFailure?: string;
}

interface Repo {
  type: string;
  settings: Record<string, string>;
  location: string;
}

interface ShardFailure {
  index: string;
  index_uuid: string;
  shard_id: number;
  reason: string;
  node_id: string;
  status: string;
}

interface SnapshotInfo {
  snapshot: string;
  uuid: string;
  version_id: number;
  version: string;
  indices: string[];
  data_streams: string[];
  include_global_state: boolean;
  metadata?: unknown;
  state: string;
  reason?: string;
  start_time: string;
  start_time_in_millis: number;
  end_time?: string;
  end_time_in_millis?: number;
  duration_in_millis?: number;
  failures: ShardFailure[];
  shards: { total: number; failed: number; successful: number };
}

interface RepoData {
  snapshots: { name: string; uuid: string; state: string }[];
  indices: Record<string, { id: string; snapshots: string[] }>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    reason: string,
    readonly cause2?: { type: string; reason: string },
  ) {
    super(reason);
  }
}

const NODE_ID = 'aB3dE5fG7hI9jK1lM3nO5p';
const SECURITY_INDEX = '.opendistro_security';

function shardOf(id: string, shards: number): number {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return h % shards;
}

function sha256(buf: Buffer | string): string {
  return createHash('sha256').update(buf).digest('hex');
}

function wildcard(p: string): RegExp {
  return new RegExp(`^${p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

export class FakeEs {
  readonly requests: { method: string; path: string }[] = [];
  readonly indices = new Map<string, Index>();
  readonly repos = new Map<string, Repo>();
  restarts = 0;
  /** The persistent cluster settings, as PUT _cluster/settings left them. */
  readonly clusterSettings = new Map<string, unknown>();
  /** Who each request was authenticated as: a user name, or the client certificate's DN. */
  readonly principals: string[] = [];
  private port = 0;
  private pathRepo: string[] = [];
  private adminDns: string[] = [];
  private readonly otherPathRepos = new Map<string, string[]>();
  private readonly running = new Map<string, { repo: string; info: SnapshotInfo; aborted: boolean; done: Promise<void> }>();
  /** index -> shard that fails when snapshotted, with the reason the node gives. */
  private readonly failing = new Map<string, { shard: number; reason: string }>();
  private readonly server: https.Server;
  private readonly clusterUuid = randomUUID();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(private readonly opts: FakeEsOptions) {
    this.readConfig();
    for (const n of opts.moreNodes ?? []) this.readOtherNode(n);
    // Client certificates are asked for, not required: the security plugin takes either a certificate or basic auth.
    const tls = { key: readFileSync(opts.pki.keyFile), cert: readFileSync(opts.pki.certFile), ca: readFileSync(opts.pki.caFile), requestCert: true, rejectUnauthorized: false };
    this.server = https.createServer(tls, (req, res) => {
      this.handle(req, res).catch((err: Error) => this.send(res, 500, { error: { type: 'exception', reason: err.message }, status: 500 }));
    });
    if (opts.securityPlugin) this.indices.set(SECURITY_INDEX, this.newIndex(1));
  }

  static async start(opts: FakeEsOptions): Promise<FakeEs> {
    const es = new FakeEs(opts);
    await new Promise<void>((resolve) => es.server.listen(opts.listen?.port ?? 0, es.listenHost, resolve));
    es.port = (es.server.address() as AddressInfo).port;
    return es;
  }

  get url(): string {
    return `https://${this.opts.listen?.urlHost ?? 'localhost'}:${this.port}`;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
    await this.pause();
  }

  /** The node goes down: connections are refused until `resume`, which keeps its port and state. */
  async pause(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async resume(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(this.port, this.listenHost, resolve));
  }

  private get listenHost(): string {
    return this.opts.listen?.host ?? '127.0.0.1';
  }

  /** The next snapshot of `index` fails on `shard`, as a node with a broken disk would report it. */
  failShardOnSnapshot(index: string, shard: number, reason: string): void {
    this.failing.set(index, { shard, reason });
  }

  /** A request as a client would send it, over HTTPS with the test CA and the first user. */
  async api<T = any>(method: string, apiPath: string, body?: unknown): Promise<{ status: number; body: T }> {
    const [user, password] = Object.entries(this.opts.users)[0]!;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        new URL(apiPath, this.url),
        {
          method,
          ca: readFileSync(this.opts.pki.caFile),
          headers: {
            authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  private static settingsOf(file: string): Record<string, any> {
    return (YAML.parse(readFileSync(file, 'utf8')) ?? {}) as Record<string, any>;
  }

  private static pathRepoOf(settings: Record<string, any>): string[] {
    const out: string[] = [];
    for (const v of [settings['path.repo'], settings.path?.repo]) {
      if (typeof v === 'string') out.push(...v.split(',').map((s) => s.trim()));
      else if (Array.isArray(v)) out.push(...v);
    }
    return out.filter(Boolean).map((p) => path.resolve(p));
  }

  private readConfig(): void {
    const settings = FakeEs.settingsOf(this.opts.configFile);
    this.pathRepo = FakeEs.pathRepoOf(settings);
    // The security plugin's super-admin certificates, named in the node's config as LambdaStack writes it.
    const dn = settings['opendistro_security.authcz.admin_dn'] ?? settings['plugins.security.authcz.admin_dn'];
    this.adminDns = Array.isArray(dn) ? dn.map(String) : typeof dn === 'string' ? [dn] : [];
  }

  private readOtherNode(node: { name: string; configFile: string }): void {
    this.otherPathRepos.set(node.name, FakeEs.pathRepoOf(FakeEs.settingsOf(node.configFile)));
  }

  /** The peer certificate's subject as the plugin compares it with admin_dn (RFC 2253: last RDN first). */
  private clientDn(req: IncomingMessage): string | undefined {
    const sock = req.socket as TLSSocket;
    if (!sock.authorized) return undefined;
    const raw = sock.getPeerCertificate()?.raw;
    if (!raw) return undefined;
    return new X509Certificate(raw).subject.split('\n').reverse().join(',');
  }

  private newIndex(shards: number): Index {
    return { uuid: randomBytes(16).toString('base64url').slice(0, 22), state: 'open', shards, docs: new Map(), aliases: [], red: false };
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.opts.restartFlag && existsSync(this.opts.restartFlag)) {
      unlinkSync(this.opts.restartFlag);
      this.restarts++;
      this.readConfig();
    }
    for (const n of this.opts.moreNodes ?? []) {
      if (n.restartFlag && existsSync(n.restartFlag)) {
        unlinkSync(n.restartFlag);
        this.restarts++;
        this.readOtherNode(n);
      }
    }
    const url = new URL(req.url ?? '/', 'https://localhost');
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');

    const auth = req.headers.authorization ?? '';
    const dn = this.clientDn(req);
    const [basicUser, pass] = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString('utf8').split(/:(.*)/s) : [];
    const certAdmin = !auth && dn !== undefined && this.adminDns.includes(dn);
    const user = certAdmin ? dn : basicUser;
    if (!certAdmin && (!user || this.opts.users[user] !== pass)) {
      const reason = auth ? `unable to authenticate user [${user ?? ''}] for REST request [${url.pathname}]` : `missing authentication credentials for REST request [${url.pathname}]`;
      return this.send(res, 401, { error: { root_cause: [{ type: 'security_exception', reason }], type: 'security_exception', reason }, status: 401 }, { 'www-authenticate': 'Basic realm="security" charset="UTF-8"' });
    }
    try {
      let body: any = {};
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new HttpError(400, 'parse_exception', 'request body is required to be valid JSON');
        }
      }
      this.principals.push(user!);
      const [status, out] = await this.route(method, url, body, user!);
      this.send(res, status, out);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      const root = err.cause2 ?? { type: err.type, reason: err.message };
      this.send(res, err.status, { error: { root_cause: [root], type: err.type, reason: err.message, ...(err.cause2 ? { caused_by: err.cause2 } : {}) }, status: err.status });
    }
  }

  private async route(method: string, url: URL, body: any, user: string): Promise<[number, unknown]> {
    const seg = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const q = url.searchParams;
    const wait = q.get('wait_for_completion') === 'true';
    if (seg.length === 0 && method === 'GET') {
      const distribution = this.opts.distribution ?? 'opensearch';
      return [200, { name: 'node-1', cluster_name: this.opts.clusterName ?? 'lsbackup-test', cluster_uuid: this.clusterUuid, version: { distribution, number: '2.11.1', build_type: 'tar', lucene_version: '9.7.0' }, tagline: 'The OpenSearch Project: https://opensearch.org/' }];
    }
    if (seg[0] === '_cluster' && seg[1] === 'health' && method === 'GET') {
      const red = [...this.indices.values()].some((i) => i.red);
      const nodes = 1 + (this.opts.moreNodes?.length ?? 0);
      return [200, { cluster_name: this.opts.clusterName ?? 'lsbackup-test', status: red ? 'red' : 'green', timed_out: false, number_of_nodes: nodes, number_of_data_nodes: nodes, active_primary_shards: 0, initializing_shards: 0, relocating_shards: 0, unassigned_shards: 0 }];
    }
    if (seg[0] === '_cluster' && seg[1] === 'settings' && seg.length === 2) {
      if (method === 'PUT') {
        for (const [k, v] of Object.entries((body?.persistent ?? {}) as Record<string, unknown>)) v === null ? this.clusterSettings.delete(k) : this.clusterSettings.set(k, v);
        return [200, { acknowledged: true, persistent: body?.persistent ?? {}, transient: {} }];
      }
      if (method === 'GET') return [200, { persistent: Object.fromEntries(this.clusterSettings), transient: {} }];
    }
    if (seg[0] === '_flush' && seg.length === 1 && (method === 'POST' || method === 'GET')) {
      const total = [...this.indices.values()].reduce((n, i) => n + i.shards, 0);
      return [200, { _shards: { total, successful: total, failed: 0 } }];
    }
    if (seg[0] === '_cat' && seg[1] === 'indices' && method === 'GET') return [200, this.catIndices(seg[2], q)];
    if (seg[0] === '_snapshot') return this.snapshotApi(method, seg.slice(1), body, wait, user);
    if (seg[0]?.startsWith('_')) throw new HttpError(400, 'illegal_argument_exception', `no handler found for uri [${url.pathname}] and method [${method}]`);
    return this.indexApi(method, seg, body, q);
  }

  // ---- indices ----

  private getIndex(name: string): Index {
    const idx = this.indices.get(name);
    if (!idx) throw new HttpError(404, 'index_not_found_exception', `no such index [${name}]`);
    return idx;
  }

  private indexApi(method: string, seg: string[], body: any, q: URLSearchParams): [number, unknown] {
    const [name, op, id] = seg as [string, string | undefined, string | undefined];
    if (!op) {
      if (method === 'PUT') {
        if (name !== name.toLowerCase() || /^[-_+]/.test(name) || /[\\/*?"<>| ,#:]/.test(name)) throw new HttpError(400, 'invalid_index_name_exception', `Invalid index name [${name}], must be lowercase`);
        const existing = this.indices.get(name);
        if (existing) throw new HttpError(400, 'resource_already_exists_exception', `index [${name}/${existing.uuid}] already exists`);
        const shards = Number(body?.settings?.number_of_shards ?? body?.settings?.index?.number_of_shards ?? 1);
        const idx = this.newIndex(shards);
        idx.aliases = Object.keys(body?.aliases ?? {});
        this.indices.set(name, idx);
        return [200, { acknowledged: true, shards_acknowledged: true, index: name }];
      }
      const idx = this.getIndex(name);
      if (method === 'GET') {
        return [200, { [name]: { aliases: Object.fromEntries(idx.aliases.map((a) => [a, {}])), mappings: {}, settings: { index: { number_of_shards: String(idx.shards), number_of_replicas: '0', uuid: idx.uuid, provided_name: name } } } }];
      }
      if (method === 'DELETE') {
        if (this.opts.securityPlugin && name === SECURITY_INDEX) throw new HttpError(403, 'security_exception', `no permissions for [indices:admin/delete] and User [name=admin]`);
        this.indices.delete(name);
        return [200, { acknowledged: true }];
      }
    }
    const idx = this.getIndex(name);
    if (op === '_close' && method === 'POST') {
      idx.state = 'close';
      return [200, { acknowledged: true, shards_acknowledged: true, indices: { [name]: { closed: true } } }];
    }
    if (op === '_open' && method === 'POST') {
      idx.state = 'open';
      return [200, { acknowledged: true, shards_acknowledged: true }];
    }
    if (idx.state === 'close') throw new HttpError(400, 'index_closed_exception', `closed`);
    if (op === '_refresh') return [200, { _shards: { total: idx.shards, successful: idx.shards, failed: 0 } }];
    if (op === '_doc' && (method === 'POST' || method === 'PUT')) {
      const docId = id ?? randomBytes(15).toString('base64url');
      const created = !idx.docs.has(docId);
      idx.docs.set(docId, body);
      return [created ? 201 : 200, { _index: name, _id: docId, _version: 1, result: created ? 'created' : 'updated', _shards: { total: 1, successful: 1, failed: 0 }, _seq_no: idx.docs.size - 1, _primary_term: 1 }];
    }
    if (op === '_doc' && method === 'GET' && id) {
      if (!idx.docs.has(id)) return [404, { _index: name, _id: id, found: false }];
      return [200, { _index: name, _id: id, _version: 1, found: true, _source: idx.docs.get(id) }];
    }
    if (idx.red) throw new HttpError(503, 'search_phase_execution_exception', 'all shards failed');
    if (op === '_count') return [200, { count: idx.docs.size, _shards: { total: idx.shards, successful: idx.shards, skipped: 0, failed: 0 } }];
    if (op === '_search') {
      const query = body?.query ?? { match_all: {} };
      if (!query.match_all) throw new HttpError(400, 'parsing_exception', `this test node only knows match_all`);
      const size = Number(q.get('size') ?? body?.size ?? 10);
      const hits = [...idx.docs.entries()].slice(0, size).map(([docId, src]) => ({ _index: name, _id: docId, _score: 1, _source: src }));
      return [200, { took: 1, timed_out: false, _shards: { total: idx.shards, successful: idx.shards, skipped: 0, failed: 0 }, hits: { total: { value: idx.docs.size, relation: 'eq' }, max_score: 1, hits } }];
    }
    throw new HttpError(405, 'illegal_argument_exception', `Incorrect HTTP method for uri [/${seg.join('/')}] and method [${method}]`);
  }

  private catIndices(pattern: string | undefined, q: URLSearchParams): unknown[] {
    const re = pattern ? wildcard(pattern) : undefined;
    const cols = q.get('h')?.split(',');
    return [...this.indices.entries()]
      .filter(([n]) => !re || re.test(n))
      .map(([n, i]) => {
        const row: Record<string, string | null> = {
          health: i.red ? 'red' : 'green',
          status: i.state,
          index: n,
          uuid: i.uuid,
          pri: String(i.shards),
          rep: '0',
          'docs.count': i.state === 'close' ? null : String(i.red ? 0 : i.docs.size),
          'docs.deleted': i.state === 'close' ? null : '0',
          'store.size': '1kb',
          'pri.store.size': '1kb',
        };
        return cols ? Object.fromEntries(cols.map((c) => [c, row[c] ?? null])) : row;
      });
  }

  // ---- snapshots ----

  private repo(name: string): Repo {
    const r = this.repos.get(name);
    if (!r) throw new HttpError(404, 'repository_missing_exception', `[${name}] missing`);
    return r;
  }

  /** Where a location lands under path.repo, as FsRepository resolves it; undefined when it does not. */
  private resolveLocation(location: string): string | undefined {
    if (!path.isAbsolute(location)) {
      for (const root of this.pathRepo) {
        const p = path.resolve(root, location);
        if (isInside(root, p)) return p;
      }
      return undefined;
    }
    const p = path.resolve(location);
    return this.pathRepo.some((root) => isInside(root, p)) ? p : undefined;
  }

  private async snapshotApi(method: string, seg: string[], body: any, wait: boolean, user: string): Promise<[number, unknown]> {
    const [repoName, snap, op] = seg;
    if (!repoName) {
      if (method === 'GET') return [200, Object.fromEntries([...this.repos.entries()].map(([n, r]) => [n, { type: r.type, settings: r.settings }]))];
      throw new HttpError(400, 'illegal_argument_exception', 'repository name is required');
    }
    if (!snap) {
      if (method === 'PUT' || method === 'POST') return this.putRepo(repoName, body);
      if (method === 'GET') {
        const r = this.repo(repoName);
        return [200, { [repoName]: { type: r.type, settings: r.settings } }];
      }
      if (method === 'DELETE') {
        this.repo(repoName);
        if ([...this.running.values()].some((r) => r.repo === repoName)) throw new HttpError(400, 'illegal_state_exception', `trying to modify or unregister repository [${repoName}] that is currently used`);
        this.repos.delete(repoName);
        return [200, { acknowledged: true }];
      }
    }
    const repo = this.repo(repoName);
    if (snap && !op) {
      if (method === 'PUT' || method === 'POST') return this.createSnapshot(repoName, repo, snap, body, wait);
      if (method === 'GET') return [200, { snapshots: await this.getSnapshots(repoName, repo, snap) }];
      if (method === 'DELETE') return this.deleteSnapshot(repoName, repo, snap);
    }
    if (snap && op === '_status' && method === 'GET') {
      const infos = await this.getSnapshots(repoName, repo, snap);
      return [200, { snapshots: infos.map((i) => this.statusOf(repoName, i)) }];
    }
    if (snap && op === '_restore' && method === 'POST') return this.restore(repoName, repo, snap, body, wait, user);
    throw new HttpError(405, 'illegal_argument_exception', `Incorrect HTTP method for uri [/_snapshot/${seg.join('/')}] and method [${method}]`);
  }

  private putRepo(name: string, body: any): [number, unknown] {
    const type = body?.type;
    const settings = (body?.settings ?? {}) as Record<string, unknown>;
    const failed = (reason: string, causeType = 'repository_exception'): never => {
      throw new HttpError(500, 'repository_exception', `[${name}] failed to create repository`, { type: causeType, reason });
    };
    if (type !== 'fs') failed(`[${name}] repository type [${type}] does not exist`);
    const location = typeof settings.location === 'string' ? settings.location : '';
    if (!location) failed(`[${name}] missing location`);
    const resolved = this.resolveLocation(location);
    if (!resolved) {
      failed(
        this.pathRepo.length > 0
          ? `[${name}] location [${location}] doesn't match any of the locations specified by path.repo`
          : `[${name}] location [${location}] doesn't match any of the locations specified by path.repo because this setting is empty`,
      );
    }
    // Every other node checks its own path.repo when it verifies the repository.
    for (const [node, roots] of this.otherPathRepos) {
      if (!roots.some((root) => isInside(root, resolved!))) {
        throw new HttpError(500, 'repository_verification_exception', `[${name}] [[${node}, 'RemoteTransportException[[${node}][internal:admin/repository/verify]]; nested: RepositoryException[[${name}] location [${location}] doesn't match any of the locations specified by path.repo];']]`);
      }
    }
    const readonly = String(settings.readonly ?? 'false') === 'true';
    if (!readonly) {
      // Repository verification: every node writes a test blob into the location.
      try {
        mkdirSync(resolved!, { recursive: true });
        const dir = path.join(resolved!, `tests-${randomBytes(8).toString('base64url')}`);
        mkdirSync(dir);
        writeFileSync(path.join(dir, `master.dat`), NODE_ID);
        rmSync(dir, { recursive: true });
      } catch (err) {
        throw new HttpError(500, 'repository_verification_exception', `[${name}] path  is not accessible on master node`, { type: 'i_o_exception', reason: (err as Error).message });
      }
    }
    this.repos.set(name, { type: 'fs', location: resolved!, settings: Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, String(v)])) });
    return [200, { acknowledged: true }];
  }

  private repoData(repo: Repo): { gen: number; data: RepoData } {
    const latest = path.join(repo.location, 'index.latest');
    if (!existsSync(latest)) return { gen: -1, data: { snapshots: [], indices: {} } };
    const gen = Number(readFileSync(latest).readBigInt64BE());
    const file = path.join(repo.location, `index-${gen}`);
    try {
      return { gen, data: JSON.parse(readFileSync(file, 'utf8')) as RepoData };
    } catch (err) {
      throw new HttpError(500, 'repository_exception', `[${path.basename(repo.location)}] could not read repository data from index blob`, { type: 'no_such_file_exception', reason: (err as Error).message });
    }
  }

  private async writeRepoData(repo: Repo, gen: number, data: RepoData): Promise<void> {
    await fsp.writeFile(path.join(repo.location, `index-${gen + 1}`), JSON.stringify(data));
    const buf = Buffer.alloc(8);
    buf.writeBigInt64BE(BigInt(gen + 1));
    await fsp.writeFile(path.join(repo.location, 'index.latest'), buf);
    if (gen >= 0) await fsp.rm(path.join(repo.location, `index-${gen}`), { force: true });
  }

  private async readInfo(repoName: string, repo: Repo, name: string): Promise<SnapshotInfo> {
    const running = [...this.running.values()].find((r) => r.repo === repoName && r.info.snapshot === name);
    if (running) return running.info;
    const { data } = this.repoData(repo);
    const entry = data.snapshots.find((s) => s.name === name);
    if (!entry) throw new HttpError(404, 'snapshot_missing_exception', `[${repoName}:${name}] is missing`);
    try {
      return JSON.parse(await fsp.readFile(path.join(repo.location, `snap-${entry.uuid}.dat`), 'utf8')) as SnapshotInfo;
    } catch (err) {
      throw new HttpError(500, 'snapshot_exception', `[${repoName}:${name}/${entry.uuid}] Snapshot could not be read`, { type: 'no_such_file_exception', reason: (err as Error).message });
    }
  }

  private async getSnapshots(repoName: string, repo: Repo, names: string): Promise<SnapshotInfo[]> {
    if (names === '_all' || names === '*' || names === '_current') {
      const running = [...this.running.values()].filter((r) => r.repo === repoName).map((r) => r.info);
      if (names === '_current') return running;
      const { data } = this.repoData(repo);
      return [...(await Promise.all(data.snapshots.map((s) => this.readInfo(repoName, repo, s.name)))), ...running];
    }
    return Promise.all(names.split(',').map((n) => this.readInfo(repoName, repo, n)));
  }

  /**
   * Index names an expression selects among `available`, as OpenSearch's SnapshotUtils.filterIndices
   * resolves them for a restore: exclusions go last, a plain name that is not there is an error
   * unless ignore_unavailable. Taking a snapshot resolves against the cluster, where excluding an
   * index that does not exist is no error (`lenientExclusions`).
   */
  private filterIndices(available: string[], expr: unknown, ignoreUnavailable: boolean, lenientExclusions = false): string[] {
    const given = expr === undefined ? [] : Array.isArray(expr) ? (expr as string[]) : String(expr).split(',');
    if (given.length === 0 || (given.length === 1 && (given[0] === '_all' || given[0] === '*'))) return [...available];
    const terms = [...given.filter((t) => !t.startsWith('-')), ...given.filter((t) => t.startsWith('-'))];
    let result: Set<string> | undefined;
    terms.forEach((term, i) => {
      let p = term;
      let add = true;
      if (p && available.includes(p)) {
        (result ??= new Set()).add(p);
        return;
      }
      if (p.startsWith('-')) {
        if (i === 0) result = new Set(available);
        add = false;
        p = p.slice(1);
      }
      if (!p || !p.includes('*')) {
        if (!available.includes(p)) {
          if (!ignoreUnavailable && !(lenientExclusions && !add)) throw new HttpError(404, 'index_not_found_exception', `no such index [${p}]`);
          result ??= new Set(available.slice(0, i));
        } else if (result) {
          add ? result.add(p) : result.delete(p);
        }
        return;
      }
      result ??= new Set(available.slice(0, i));
      const re = wildcard(p);
      for (const n of available.filter((a) => re.test(a))) add ? result.add(n) : result.delete(n);
    });
    return result ? [...result] : given;
  }

  private createSnapshot(repoName: string, repo: Repo, name: string, body: any, wait: boolean): [number, unknown] | Promise<[number, unknown]> {
    if (String(repo.settings.readonly) === 'true') throw new HttpError(500, 'repository_exception', `[${repoName}] cannot create snapshot in a readonly repository`);
    if (name !== name.toLowerCase()) throw new HttpError(400, 'invalid_snapshot_name_exception', `[${repoName}:${name}] Invalid snapshot name [${name}], must be lowercase`);
    if (/[\\/*?"<>| ,#]/.test(name) || name.startsWith('_')) throw new HttpError(400, 'invalid_snapshot_name_exception', `[${repoName}:${name}] Invalid snapshot name [${name}], must not contain the following characters [\\, /, *, ?, ", <, >, |,  , ,, #]`);
    if ([...this.running.values()].some((r) => r.repo === repoName && r.info.snapshot === name)) {
      throw new HttpError(400, 'invalid_snapshot_name_exception', `[${repoName}:${name}] Invalid snapshot name [${name}], snapshot with the same name is already in-progress`);
    }
    if (this.repoData(repo).data.snapshots.some((s) => s.name === name)) {
      throw new HttpError(400, 'invalid_snapshot_name_exception', `[${repoName}:${name}] Invalid snapshot name [${name}], snapshot with the same name already exists`);
    }
    const open = [...this.indices.entries()].filter(([, i]) => i.state === 'open').map(([n]) => n);
    const chosen = this.filterIndices(open, body?.indices, body?.ignore_unavailable === true, true).sort();
    // What the snapshot holds is what the shards had when it started.
    const frozen = new Map(chosen.map((n) => [n, { idx: this.indices.get(n)!, docs: [...this.indices.get(n)!.docs.entries()] }]));
    const now = Date.now();
    const info: SnapshotInfo = {
      snapshot: name,
      uuid: randomBytes(16).toString('base64url').slice(0, 22),
      version_id: 136327827,
      version: '2.11.1',
      indices: chosen,
      data_streams: [],
      include_global_state: body?.include_global_state !== false,
      metadata: body?.metadata,
      state: 'IN_PROGRESS',
      start_time: new Date(now).toISOString(),
      start_time_in_millis: now,
      failures: [],
      shards: { total: 0, failed: 0, successful: 0 },
    };
    const entry = { repo: repoName, info, aborted: false, done: Promise.resolve() };
    entry.done = new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.finishSnapshot(repo, entry, frozen).finally(() => {
          this.running.delete(`${repoName}/${name}`);
          resolve();
        });
      }, this.opts.snapshotDelayMs ?? 300);
      this.timers.add(t);
    });
    this.running.set(`${repoName}/${name}`, entry);
    if (!wait) return [200, { accepted: true }];
    return entry.done.then(() => this.readInfo(repoName, repo, name).then((i) => [200, { snapshot: i }] as [number, unknown]));
  }

  /** Writes the snapshot's files: per shard a data blob and its file list, index metadata, the snapshot info, a new index-N. */
  private async finishSnapshot(repo: Repo, entry: { info: SnapshotInfo; aborted: boolean }, frozen: Map<string, { idx: Index; docs: [string, unknown][] }>): Promise<void> {
    const info = entry.info;
    if (entry.aborted) return;
    try {
      const { gen, data } = this.repoData(repo);
      for (const [name, { idx, docs }] of frozen) {
        const indexId = data.indices[name]?.id ?? randomBytes(16).toString('base64url').slice(0, 22);
        data.indices[name] ??= { id: indexId, snapshots: [] };
        data.indices[name].snapshots.push(info.uuid);
        const dir = path.join(repo.location, 'indices', indexId);
        await fsp.mkdir(dir, { recursive: true });
        await fsp.writeFile(path.join(dir, `meta-${info.uuid}.dat`), JSON.stringify({ name, uuid: idx.uuid, settings: { number_of_shards: idx.shards }, aliases: idx.aliases }));
        const fail = this.failing.get(name);
        for (let shard = 0; shard < idx.shards; shard++) {
          info.shards.total++;
          if (fail && fail.shard === shard) {
            info.shards.failed++;
            info.failures.push({ index: name, index_uuid: indexId, shard_id: shard, reason: fail.reason, node_id: NODE_ID, status: 'INTERNAL_SERVER_ERROR' });
            continue;
          }
          const lines = docs.filter(([id]) => shardOf(id, idx.shards) === shard).map(([id, src]) => JSON.stringify({ _id: id, _source: src }) + '\n');
          const blob = Buffer.from(lines.join(''));
          const checksum = sha256(blob);
          const shardDir = path.join(dir, String(shard));
          await fsp.mkdir(shardDir, { recursive: true });
          // Content-named blobs: an unchanged shard reuses the file an earlier snapshot wrote (incremental).
          const blobName = `__${checksum.slice(0, 32)}`;
          if (!existsSync(path.join(shardDir, blobName))) await fsp.writeFile(path.join(shardDir, blobName), blob);
          await fsp.writeFile(path.join(shardDir, `snap-${info.uuid}.dat`), JSON.stringify({ name: info.snapshot, files: [{ name: blobName, physical_name: '_0.cfs', length: blob.length, checksum }] }));
          info.shards.successful++;
        }
      }
      this.failing.clear();
      const end = Date.now();
      info.state = info.shards.failed === 0 ? 'SUCCESS' : info.shards.successful === 0 && info.shards.total > 0 ? 'FAILED' : 'PARTIAL';
      info.end_time = new Date(end).toISOString();
      info.end_time_in_millis = end;
      info.duration_in_millis = end - info.start_time_in_millis;
      await fsp.writeFile(path.join(repo.location, `meta-${info.uuid}.dat`), JSON.stringify({ cluster_uuid: this.clusterUuid, templates: {} }));
      await fsp.writeFile(path.join(repo.location, `snap-${info.uuid}.dat`), JSON.stringify(info));
      data.snapshots.push({ name: info.snapshot, uuid: info.uuid, state: info.state });
      await this.writeRepoData(repo, gen, data);
    } catch (err) {
      info.state = 'FAILED';
      info.reason = (err as Error).message;
    }
  }

  private async deleteSnapshot(repoName: string, repo: Repo, name: string): Promise<[number, unknown]> {
    const running = this.running.get(`${repoName}/${name}`);
    if (running) {
      running.aborted = true;
      return [200, { acknowledged: true }];
    }
    const { gen, data } = this.repoData(repo);
    const entry = data.snapshots.find((s) => s.name === name);
    if (!entry) throw new HttpError(404, 'snapshot_missing_exception', `[${repoName}:${name}] is missing`);
    data.snapshots = data.snapshots.filter((s) => s.name !== name);
    // As documented: every file of the snapshot goes unless another snapshot still uses it.
    for (const [n, ix] of Object.entries(data.indices)) {
      ix.snapshots = ix.snapshots.filter((u) => u !== entry.uuid);
      const dir = path.join(repo.location, 'indices', ix.id);
      if (ix.snapshots.length === 0) {
        delete data.indices[n];
        await fsp.rm(dir, { recursive: true, force: true });
        continue;
      }
      await fsp.rm(path.join(dir, `meta-${entry.uuid}.dat`), { force: true });
      for (const shard of existsSync(dir) ? (await fsp.readdir(dir)).filter((f) => !f.endsWith('.dat')) : []) {
        const shardDir = path.join(dir, shard);
        await fsp.rm(path.join(shardDir, `snap-${entry.uuid}.dat`), { force: true });
        const files = await fsp.readdir(shardDir);
        const used = new Set<string>();
        for (const f of files.filter((x) => x.startsWith('snap-'))) {
          for (const b of (JSON.parse(await fsp.readFile(path.join(shardDir, f), 'utf8')) as { files: { name: string }[] }).files) used.add(b.name);
        }
        for (const blob of files.filter((x) => x.startsWith('__') && !used.has(x))) await fsp.rm(path.join(shardDir, blob));
      }
    }
    await fsp.rm(path.join(repo.location, `snap-${entry.uuid}.dat`), { force: true });
    await fsp.rm(path.join(repo.location, `meta-${entry.uuid}.dat`), { force: true });
    await this.writeRepoData(repo, gen, data);
    return [200, { acknowledged: true }];
  }

  private statusOf(repoName: string, info: SnapshotInfo): unknown {
    const stage = info.state === 'IN_PROGRESS' ? 'STARTED' : 'DONE';
    const stats = { incremental: { file_count: 0, size_in_bytes: 0 }, total: { file_count: 0, size_in_bytes: 0 }, start_time_in_millis: info.start_time_in_millis, time_in_millis: info.duration_in_millis ?? 0 };
    const failed = (n: string) => info.failures.filter((f) => f.index === n);
    return {
      snapshot: info.snapshot,
      repository: repoName,
      uuid: info.uuid,
      state: info.state,
      include_global_state: info.include_global_state,
      shards_stats: { initializing: 0, started: stage === 'STARTED' ? info.indices.length : 0, finalizing: 0, done: info.shards.successful, failed: info.shards.failed, total: info.shards.total },
      stats,
      indices: Object.fromEntries(
        info.indices.map((n) => [
          n,
          {
            shards_stats: { initializing: 0, started: 0, finalizing: 0, done: 0, failed: failed(n).length, total: 0 },
            stats,
            shards: Object.fromEntries(failed(n).map((f) => [String(f.shard_id), { stage: 'FAILURE', reason: f.reason }])),
          },
        ]),
      ),
    };
  }

  private async restore(repoName: string, repo: Repo, name: string, body: any, wait: boolean, user: string): Promise<[number, unknown]> {
    const info = await this.readInfo(repoName, repo, name);
    const id = `[${repoName}:${name}/${info.uuid}]`;
    if (info.state !== 'SUCCESS' && info.state !== 'PARTIAL') throw new HttpError(500, 'snapshot_restore_exception', `${id} unsupported snapshot state [${info.state}]`);
    const includeGlobal = body?.include_global_state === true;
    const chosen = this.filterIndices(info.indices, body?.indices, body?.ignore_unavailable === true);
    if (this.opts.securityPlugin && (includeGlobal || chosen.includes(SECURITY_INDEX))) {
      throw new HttpError(403, 'security_exception', `no permissions for [cluster:admin/snapshot/restore] and User [name=${user}, backend_roles=[], requestedTenant=null]`);
    }
    if (body?.partial !== true) {
      for (const n of chosen) {
        if (info.failures.some((f) => f.index === n)) throw new HttpError(500, 'snapshot_restore_exception', `${id} index [${n}] wasn't fully snapshotted - cannot restore`);
      }
    }
    const rename = (n: string) => (body?.rename_pattern ? n.replace(new RegExp(body.rename_pattern, 'g'), String(body.rename_replacement ?? '')) : n);
    const { data } = this.repoData(repo);
    const plans: { source: string; target: string; meta: { uuid: string; settings: { number_of_shards: number }; aliases: string[] }; dir: string }[] = [];
    for (const source of chosen) {
      const target = rename(source);
      const existing = this.indices.get(target);
      const indexId = data.indices[source]?.id;
      if (!indexId) throw new HttpError(500, 'snapshot_restore_exception', `${id} index [${source}] is not in the repository data`);
      const dir = path.join(repo.location, 'indices', indexId);
      let meta;
      try {
        meta = JSON.parse(await fsp.readFile(path.join(dir, `meta-${info.uuid}.dat`), 'utf8'));
      } catch (err) {
        throw new HttpError(500, 'snapshot_restore_exception', `${id} failed to read metadata of index [${source}]`, { type: 'no_such_file_exception', reason: (err as Error).message });
      }
      if (existing?.state === 'open') {
        throw new HttpError(
          500,
          'snapshot_restore_exception',
          `${id} cannot restore index [${target}] because an open index with same name already exists in the cluster. Either close or delete the existing index or restore the index under a different name by providing a rename pattern and replacement name`,
        );
      }
      if (existing && existing.shards !== meta.settings.number_of_shards) {
        throw new HttpError(500, 'snapshot_restore_exception', `${id} cannot restore index [${target}] with [${existing.shards}] shards from a snapshot of index [${source}] with [${meta.settings.number_of_shards}] shards`);
      }
      plans.push({ source, target, meta, dir });
    }
    let shardsTotal = 0;
    let shardsFailed = 0;
    const recoveries = plans.map(({ target, meta, dir }) => {
      const idx = this.newIndex(meta.settings.number_of_shards);
      idx.red = true;
      idx.aliases = body?.include_aliases === false ? [] : meta.aliases;
      this.indices.set(target, idx);
      shardsTotal += idx.shards;
      return new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.recover(idx, dir, info.uuid)
            .catch((err: Error) => {
              shardsFailed++;
              idx.recoveryFailure = err.message;
            })
            .finally(resolve);
        }, this.opts.restoreDelayMs ?? 200);
        this.timers.add(t);
      });
    });
    if (!wait) return [200, { accepted: true }];
    await Promise.all(recoveries);
    return [200, { snapshot: { snapshot: name, indices: plans.map((p) => p.target), shards: { total: shardsTotal, failed: shardsFailed, successful: shardsTotal - shardsFailed } } }];
  }

  /** Reads a restored index's shards back from the repository, checking each file's length and checksum. */
  private async recover(idx: Index, dir: string, uuid: string): Promise<void> {
    const docs = new Map<string, unknown>();
    for (let shard = 0; shard < idx.shards; shard++) {
      const shardDir = path.join(dir, String(shard));
      const list = JSON.parse(await fsp.readFile(path.join(shardDir, `snap-${uuid}.dat`), 'utf8')) as { files: { name: string; length: number; checksum: string }[] };
      for (const f of list.files) {
        const blob = await fsp.readFile(path.join(shardDir, f.name));
        if (blob.length !== f.length || sha256(blob) !== f.checksum) throw new Error(`CorruptIndexException: checksum failed for ${f.name} of shard ${shard}`);
        for (const line of blob.toString('utf8').split('\n').filter(Boolean)) {
          const d = JSON.parse(line) as { _id: string; _source: unknown };
          docs.set(d._id, d._source);
        }
      }
    }
    idx.docs = docs;
    idx.red = false;
  }
}
