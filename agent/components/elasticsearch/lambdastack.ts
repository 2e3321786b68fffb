/**
 * How LambdaStack (and Epiphany v2) lay an Elasticsearch/OpenSearch node out, and what the node's
 * own config file says: the agent reads these at each use, so a node needs no hand-written
 * settings. Sources (docs/lambdastack-elasticsearch.md lists them with their repository paths):
 * lambdastack/lambdastack roles/opendistro_for_elasticsearch (defaults/main.yml,
 * templates/elasticsearch.yml.j2, tasks/generate-certs.yml) and hitachienergy/epiphany
 * roles/opensearch (defaults/main.yml, templates/opensearch.yml.j2).
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';

export interface Layout {
  /** What `lsbackup agents` calls the product. */
  product: string;
  configFile: string;
  /** The security plugin's settings prefix: `opendistro_security` on Open Distro, `plugins.security` on OpenSearch. */
  securityPrefix: string;
  /** The root CA that signs every node's HTTP certificate. */
  caFile: string;
  /** The admin client certificate the role creates (its DN is the config's authcz.admin_dn) and its key. */
  adminCertFile: string;
  adminKeyFile: string;
}

/** LambdaStack's layout first: it is the default, and the one error messages name when neither is found. */
export const LAYOUTS: readonly Layout[] = [
  {
    product: 'Open Distro for Elasticsearch',
    configFile: '/etc/elasticsearch/elasticsearch.yml',
    securityPrefix: 'opendistro_security',
    caFile: '/etc/elasticsearch/lambdastack-root-ca.pem',
    adminCertFile: '/etc/elasticsearch/lambdastack-admin.pem',
    adminKeyFile: '/etc/elasticsearch/lambdastack-admin-key.pem',
  },
  {
    product: 'OpenSearch',
    configFile: '/usr/share/opensearch/config/opensearch.yml',
    securityPrefix: 'plugins.security',
    caFile: '/usr/share/opensearch/config/epiphany-root-ca.pem',
    adminCertFile: '/usr/share/opensearch/config/epiphany-admin.pem',
    adminKeyFile: '/usr/share/opensearch/config/epiphany-admin-key.pem',
  },
];

/** Where the agent looks: the real root, or a fixture tree in tests. */
export interface NodeEnv {
  /** Prefix for the layouts' absolute paths and the absolute paths the config file names. */
  root?: string;
  hostname?: () => string;
}

export function rooted(env: NodeEnv, p: string): string {
  return env.root && path.isAbsolute(p) ? path.join(env.root, p) : p;
}

/** The layout whose config file is on this node; the one `configFile` belongs to when it is given. */
export function layoutOf(env: NodeEnv, configFile?: string): { layout: Layout; configFile: string; found: boolean } {
  if (configFile) {
    const layout = path.basename(configFile) === 'opensearch.yml' ? LAYOUTS[1]! : LAYOUTS[0]!;
    return { layout, configFile, found: existsSync(configFile) };
  }
  for (const layout of LAYOUTS) {
    const file = rooted(env, layout.configFile);
    if (existsSync(file)) return { layout, configFile: file, found: true };
  }
  return { layout: LAYOUTS[0]!, configFile: rooted(env, LAYOUTS[0]!.configFile), found: false };
}

/** A setting as the node reads it: flat (`path.repo: x`), nested (`path: {repo: x}`) or mixed. */
export function settingOf(settings: unknown, key: string): unknown {
  if (!settings || typeof settings !== 'object' || Array.isArray(settings)) return undefined;
  const obj = settings as Record<string, unknown>;
  if (key in obj) return obj[key];
  const parts = key.split('.');
  for (let i = 1; i < parts.length; i++) {
    const head = parts.slice(0, i).join('.');
    if (head in obj) {
      const v = settingOf(obj[head], parts.slice(i).join('.'));
      if (v !== undefined) return v;
    }
  }
  return undefined;
}

/** path.repo: a list or a comma-separated string. */
export function pathRepoOf(settings: unknown): string[] {
  const v = settingOf(settings, 'path.repo');
  if (typeof v === 'string') return v.split(',').map((x) => x.trim()).filter(Boolean);
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

export interface NodeConfig {
  text?: string;
  settings?: Record<string, unknown>;
  /** Why the file could not be read or parsed: the code (ENOENT, EACCES) or the YAML error's first line. */
  problem?: string;
}

export async function readNodeConfig(file: string): Promise<NodeConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    return { problem: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  const doc = YAML.parseDocument(text);
  if (doc.errors.length > 0) return { text, problem: `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}` };
  const js = doc.toJS() as unknown;
  return { text, settings: js && typeof js === 'object' ? (js as Record<string, unknown>) : {} };
}

/** Bind-all and ES's special values (`_local_`, `_site_`) name no host a certificate is issued for. */
function concreteHost(v: unknown): string | undefined {
  const first = Array.isArray(v) ? v[0] : v;
  if (typeof first !== 'string') return undefined;
  const h = first.trim();
  if (!h || /^_.*_$/.test(h) || h === '0.0.0.0' || h === '::' || h === '[::]') return undefined;
  return h;
}

/**
 * The node's own HTTPS address: LambdaStack binds to `network.host: {{ansible_hostname}}` and
 * issues the HTTP certificate for the host name, node name, FQDN and IP (never localhost), so
 * the agent connects by that name. `http.host` overrides network.host for HTTP, as on the node.
 */
export function nodeUrlOf(settings: Record<string, unknown> | undefined, env: NodeEnv): { url: string; from: string } {
  const fromConfig = concreteHost(settingOf(settings, 'http.host')) ?? concreteHost(settingOf(settings, 'network.host'));
  const host = fromConfig ?? (env.hostname ?? os.hostname)();
  const rawPort = settingOf(settings, 'http.port');
  const port = typeof rawPort === 'number' ? rawPort : typeof rawPort === 'string' && /^\d+/.test(rawPort) ? Number(/^\d+/.exec(rawPort)![0]) : 9200;
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return { url: `https://${hostPart}:${port}`, from: fromConfig ? 'network.host' : 'host name' };
}

/** The HTTP CA the node's config names (relative paths are in its config directory). */
export function configuredCaOf(settings: Record<string, unknown> | undefined, layout: Layout, configFile: string, env: NodeEnv): string | undefined {
  for (const prefix of [layout.securityPrefix, 'opendistro_security', 'plugins.security']) {
    const v = settingOf(settings, `${prefix}.ssl.http.pemtrustedcas_filepath`);
    if (typeof v === 'string' && v.trim()) return path.isAbsolute(v) ? rooted(env, v) : path.join(path.dirname(configFile), v);
  }
  return undefined;
}

/** Why a client certificate cannot be used (expired, not yet valid, unreadable), or undefined. */
export async function certificateProblem(file: string, now = new Date()): Promise<string | undefined> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(await fsp.readFile(file));
  } catch (err) {
    return `${file}: ${(err as NodeJS.ErrnoException).code ?? 'not a PEM certificate'}`;
  }
  const until = new Date(cert.validTo);
  if (until < now) return `${file} expired on ${until.toISOString().slice(0, 10)}`;
  const from = new Date(cert.validFrom);
  if (from > now) return `${file} is valid only from ${from.toISOString().slice(0, 10)}`;
  return undefined;
}
