import { NotFoundError, PermissionError, PreconditionError, UnavailableError, type LsbackupError } from '../../../common/errors.js';
import { basicAuthorization, describeNetworkFailure, errorForStatus, httpText, isOk, readSettingFile } from '../../http.js';
import { readSecretFile } from '../../secrets.js';
import { certificateProblem } from './lambdastack.js';

/** The cluster's REST API as the component uses it: credentials, error types, the answers it reads. */

/** Snapshot, restore and reload progress: asked often at first, then every 5 s. */
export const POLL = { everyMs: 250, maxMs: 5000 };

export interface EsErrorBody {
  error?: string | { type?: string; reason?: string; root_cause?: { type?: string; reason?: string }[]; caused_by?: { type?: string; reason?: string } };
  status?: number;
}

/** What the cluster answered, kept beside the typed error so callers can react to one error type. */
export type EsError = LsbackupError & { esType: string; httpStatus: number };

export function esTypeOf(err: unknown): string {
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

export interface SnapshotInfo {
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

export interface ClusterHealth {
  status: string;
  cluster_name?: string;
  number_of_nodes?: number;
  initializing_shards?: number;
  relocating_shards?: number;
}

export interface CatIndex {
  index: string;
  status?: string;
  health?: string;
}

/** How the agent reaches the cluster, resolved from the settings and the node at each use. */
export interface Connection {
  url: string;
  caFile: string;
  auth: Auth;
  requestTimeoutSeconds: number;
}

export type Auth =
  | { kind: 'basic'; username: string; passwordFile: string }
  | { kind: 'api_key'; file: string }
  /** `layout`: LambdaStack's admin certificate, used because no credentials are set. */
  | { kind: 'client_cert'; certFile: string; keyFile: string; layout: boolean }
  | { kind: 'none' };

export function describeAuth(auth: Auth): string {
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
export class EsClient {
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

export function enc(name: string): string {
  return encodeURIComponent(name);
}
