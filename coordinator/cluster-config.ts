import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InputError } from '../common/errors.js';

/**
 * What lsbackup needs from the `manifest.yml` LambdaStack (and Epiphany) writes into a cluster's
 * build directory beside the inventory: the whole cluster configuration as one multi-document
 * YAML file, a `kind: lambdastack-cluster` (or `epiphany-cluster`) document with the components
 * and their counts, `kind: configuration/<feature>` documents with each role's settings, and
 * `kind: infrastructure/<...>` documents. Secrets live in it too (admin passwords): only the
 * facts below are read, and no value of the file is ever quoted in an error.
 */
export interface ClusterConfig {
  file: string;
  /** `lambdastack-cluster` or `epiphany-cluster`. */
  kind: string;
  version: string;
  /** LambdaStack component -> machine count, from the cluster document. */
  components: Map<string, number>;
  /** configuration/prometheus specification.alertmanager.enable (false by LambdaStack's default). */
  alertmanager: boolean;
  /** Repmgr streaming replication between the [postgresql] hosts. */
  replication: { enabled: boolean; user: string; privilegedUser: string; database: string };
  /** configuration/rabbitmq specification.rabbitmq_plugins (none by default: no management API). */
  rabbitmqPlugins: string[];
  /** cluster_name of configuration/logging and configuration/opendistro-for-elasticsearch, by inventory group. */
  esClusterNames: Record<string, string>;
}

/**
 * The components LambdaStack's own schema knows (schema/any/defaults/lambdastack-cluster.yml).
 * A cluster may define more in its feature-mapping's roles_mapping; any other name is a typo.
 */
const KNOWN_COMPONENTS = [
  'kubernetes_master', 'kubernetes_node', 'logging', 'monitoring', 'kafka', 'postgresql', 'load_balancer',
  'rabbitmq', 'ignite', 'opendistro_for_elasticsearch', 'repository', 'single_machine',
];
const CLUSTER_KINDS = new Set(['lambdastack-cluster', 'epiphany-cluster']);
const KIND = /^(lambdastack-cluster|epiphany-cluster|(configuration|infrastructure)\/[a-z0-9][a-z0-9_-]*)$/;

type Doc = Record<string, unknown>;
const isObject = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v);
const at = (v: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), v);

/** Finds the manifest.yml beside the inventory (LambdaStack: build/<cluster>/manifest.yml); undefined when there is none. */
export async function findClusterConfig(buildDir: string, inventoryFile: string): Promise<string | undefined> {
  for (const dir of new Set([path.dirname(inventoryFile), buildDir, path.dirname(path.dirname(inventoryFile))])) {
    for (const name of ['manifest.yml', 'manifest.yaml']) {
      const p = path.join(dir, name);
      if ((await fsp.stat(p).catch(() => undefined))?.isFile()) return p;
    }
  }
  return undefined;
}

export function parseClusterConfig(text: string, file: string): ClusterConfig {
  const docs = YAML.parseAllDocuments(text);
  const where = (i: number, kind?: string) => `${file} document ${i + 1}${kind ? ` (kind: ${kind})` : ''}`;
  if (!Array.isArray(docs)) throw new InputError(`${file}: not a YAML manifest`);
  const byKind = new Map<string, Doc>();
  let cluster: { doc: Doc; index: number } | undefined;
  let count = 0;
  docs.forEach((d, i) => {
    if (d.errors.length > 0) throw new InputError(`${where(i)}: not valid YAML: ${d.errors[0]!.message.split('\n')[0]}`);
    const body: unknown = d.toJS({ maxAliasCount: 100 });
    if (body === null || body === undefined) return; // an empty document between separators
    if (!isObject(body)) throw new InputError(`${where(i)}: expected a mapping with a 'kind' key, got ${Array.isArray(body) ? 'a list' : typeof body}`);
    const kind = body.kind;
    if (typeof kind !== 'string' || !KIND.test(kind)) {
      throw new InputError(`${where(i)}: ${typeof kind === 'string' ? `unknown kind '${kind.slice(0, 80)}'` : "no 'kind'"} (expected lambdastack-cluster, configuration/<name> or infrastructure/<name>)`);
    }
    count++;
    if (CLUSTER_KINDS.has(kind)) {
      if (cluster) throw new InputError(`${where(i, kind)}: a second cluster document (the first is document ${cluster.index + 1})`);
      cluster = { doc: body, index: i };
    } else if (!byKind.has(kind)) byKind.set(kind, body);
  });
  if (count === 0) throw new InputError(`${file}: no documents`);
  if (!cluster) throw new InputError(`${file}: no 'kind: lambdastack-cluster' document`);

  const clusterKind = cluster.doc.kind as string;
  const comps = at(cluster.doc, 'specification', 'components');
  if (comps !== undefined && !isObject(comps)) throw new InputError(`${where(cluster.index, clusterKind)}: specification.components must be a mapping`);
  const mapped = at(byKind.get('configuration/feature-mapping'), 'specification', 'roles_mapping');
  const known = new Set([...KNOWN_COMPONENTS, ...(isObject(mapped) ? Object.keys(mapped) : [])]);
  const components = new Map<string, number>();
  for (const [name, spec] of Object.entries(comps ?? {})) {
    if (!known.has(name)) {
      throw new InputError(`${where(cluster.index, clusterKind)}: unknown component '${name.slice(0, 80)}' (known: ${[...known].sort().join(', ')})`);
    }
    const n = at(spec, 'count');
    if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 0)) {
      throw new InputError(`${where(cluster.index, clusterKind)}: components.${name}.count must be a whole number`);
    }
    components.set(name, (n as number | undefined) ?? 0);
  }

  const spec = (kind: string, ...keys: string[]) => at(byKind.get(kind), 'specification', ...keys);
  const flag = (kind: string, keys: string[], dflt: boolean): boolean => {
    const v = spec(kind, ...keys);
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'boolean') return v;
    // ruamel (LambdaStack's writer) emits YAML 1.2, where a hand-written yes/on is a string.
    if (typeof v === 'string' && /^(true|yes|on)$/i.test(v)) return true;
    if (typeof v === 'string' && /^(false|no|off)$/i.test(v)) return false;
    throw new InputError(`${file} (kind: ${kind}): specification.${keys.join('.')} must be true or false`);
  };
  const text_ = (kind: string, keys: string[], dflt: string): string => {
    const v = spec(kind, ...keys);
    return typeof v === 'string' && v ? v : dflt;
  };
  const plugins = spec('configuration/rabbitmq', 'rabbitmq_plugins') ?? [];
  if (!Array.isArray(plugins) || !plugins.every((p) => typeof p === 'string')) {
    throw new InputError(`${file} (kind: configuration/rabbitmq): specification.rabbitmq_plugins must be a list of plugin names`);
  }
  const esClusterNames: Record<string, string> = {};
  for (const [group, kind] of [['logging', 'configuration/logging'], ['opendistro_for_elasticsearch', 'configuration/opendistro-for-elasticsearch']] as const) {
    const name = spec(kind, 'cluster_name');
    if (typeof name === 'string' && name) esClusterNames[group] = name;
  }
  return {
    file,
    kind: clusterKind,
    version: String(cluster.doc.version ?? ''),
    components,
    alertmanager: flag('configuration/prometheus', ['alertmanager', 'enable'], false),
    replication: {
      enabled: flag('configuration/postgresql', ['extensions', 'replication', 'enabled'], false),
      user: text_('configuration/postgresql', ['extensions', 'replication', 'replication_user_name'], 'ls_repmgr'),
      privilegedUser: text_('configuration/postgresql', ['extensions', 'replication', 'privileged_user_name'], 'ls_repmgr_admin'),
      database: text_('configuration/postgresql', ['extensions', 'replication', 'repmgr_database'], 'ls_repmgr'),
    },
    rabbitmqPlugins: plugins as string[],
    esClusterNames,
  };
}

export async function readClusterConfig(buildDir: string, inventoryFile: string): Promise<ClusterConfig | undefined> {
  const file = await findClusterConfig(buildDir, inventoryFile);
  if (!file) return undefined;
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  return parseClusterConfig(text, file);
}
