import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InputError } from '../common/errors.js';
import { shown } from '../common/quote.js';
import type { ComponentName } from '../common/manifest.js';

/** Which inventory groups mean which components; a group not listed here is not backed up. */
export const GROUP_COMPONENTS: Record<string, ComponentName[]> = {
  haproxy: ['haproxy'],
  load_balancer: ['haproxy'],
  logging: ['elasticsearch'],
  opensearch: ['elasticsearch'],
  opendistro_for_elasticsearch: ['elasticsearch'],
  elasticsearch: ['elasticsearch'],
  kibana: ['kibana'],
  opensearch_dashboards: ['kibana'],
  prometheus: ['prometheus', 'alertmanager'],
  grafana: ['grafana'],
  postgresql: ['postgresql'],
  rabbitmq: ['rabbitmq'],
};

/** Groups Ansible or LambdaStack use for structure, not for a service. */
const STRUCTURAL = new Set(['all', 'ungrouped']);

/**
 * LambdaStack roles whose hosts hold data lsbackup does not back up: each is named on its own
 * line, so nobody takes a complete set for a backup of them. (Role names as the inventory has
 * them: schema/common/defaults/configuration/feature-mapping.yml, dashes made underscores.)
 */
export const DATA_NOT_COVERED: Record<string, string> = {
  kafka: 'Kafka topics and offsets',
  zookeeper: 'ZooKeeper data',
  kubernetes_master: 'the Kubernetes etcd',
  vault: 'HashiCorp Vault storage',
  ignite: 'Apache Ignite persistence',
};

/**
 * LambdaStack roles with nothing to back up: agents, exporters and shippers that hold no state,
 * and what `lambdastack apply` rebuilds (the package repository, the image registry, Helm charts).
 */
export const NOTHING_TO_BACK_UP = new Set([
  'node_exporter', 'jmx_exporter', 'kafka_exporter', 'haproxy_exporter', 'postgres_exporter', 'filebeat', 'firewall',
  'logstash', 'elasticsearch_curator', 'helm', 'applications', 'repository', 'image_registry', 'kubernetes_node',
]);

export interface InventoryHost {
  name: string;
  address: string;
  port: number;
  /** Where its agent listens (host:port, an IPv6 address in brackets), computed once as the inventory is read. */
  agent: string;
  components: Set<ComponentName>;
  groups: string[];
}

export interface Inventory {
  file: string;
  hosts: Map<string, InventoryHost>;
  /** "kafka: node4, node5" for each group lsbackup does not back up. */
  notCovered: string[];
}

const CANDIDATES = ['inventory', 'inventory.ini', 'inventory.yml', 'inventory.yaml', 'hosts', 'hosts.ini', 'hosts.yml', 'hosts.yaml'];

/** Finds the inventory LambdaStack wrote into a build directory. */
export async function findInventory(buildDir: string): Promise<string> {
  let st;
  try {
    st = await fsp.stat(buildDir);
  } catch {
    throw new InputError(`build directory '${shown(buildDir)}' does not exist`);
  }
  if (!st.isDirectory()) throw new InputError(`build directory '${shown(buildDir)}' is not a directory`);
  for (const name of CANDIDATES) {
    const p = path.join(buildDir, name);
    const s = await fsp.stat(p).catch(() => undefined);
    if (s?.isFile()) return p;
    if (s?.isDirectory()) {
      const files = (await fsp.readdir(p)).filter((f) => !f.startsWith('.')).sort();
      if (files.length) return path.join(p, files[0]!);
    }
  }
  throw new InputError(`build directory '${shown(buildDir)}' has no Ansible inventory (looked for ${CANDIDATES.join(', ')})`);
}

interface RawHost {
  vars: Record<string, string>;
  groups: Set<string>;
}

function parseIni(text: string, file: string): Map<string, RawHost> {
  const hosts = new Map<string, RawHost>();
  let group = 'ungrouped';
  let section: 'hosts' | 'vars' | 'children' = 'hosts';
  text.split(/\r?\n/).forEach((raw, i) => {
    // Terminal escapes, NUL bytes, undecodable bytes: not an inventory line, and never echoed raw.
    if (/[\p{Cc}\p{Cf}\ufffd]/u.test(raw.replace(/\t/g, ' '))) throw new InputError(`inventory ${file} line ${i + 1}: holds control characters or bytes that are not text: '${shown(raw.trim())}'`);
    const line = raw.replace(/\s[#;].*$/, '').trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const head = /^\[([^\]]+)\]$/.exec(line);
    if (head) {
      const [name, kind] = head[1]!.split(':');
      group = name!.trim();
      section = kind === 'vars' ? 'vars' : kind === 'children' ? 'children' : 'hosts';
      return;
    }
    if (section !== 'hosts') return;
    const [name, ...pairs] = line.split(/\s+/);
    const vars: Record<string, string> = {};
    for (const p of pairs) {
      const eq = p.indexOf('=');
      if (eq <= 0) throw new InputError(`inventory ${file} line ${i + 1}: expected 'name key=value ...', got '${shown(raw.trim())}'`);
      vars[p.slice(0, eq)] = p.slice(eq + 1).replace(/^(['"])(.*)\1$/, '$2');
    }
    const h = hosts.get(name!) ?? { vars: {}, groups: new Set<string>() };
    Object.assign(h.vars, vars);
    h.groups.add(group);
    hosts.set(name!, h);
  });
  return hosts;
}

function parseYaml(text: string, file: string): Map<string, RawHost> {
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (err) {
    throw new InputError(`inventory ${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const hosts = new Map<string, RawHost>();
  const visit = (groupName: string, node: unknown) => {
    if (!node || typeof node !== 'object') return;
    const g = node as { hosts?: Record<string, Record<string, unknown> | null>; children?: Record<string, unknown> };
    for (const [name, vars] of Object.entries(g.hosts ?? {})) {
      if (/[\p{C}\ufffd]/u.test(name)) throw new InputError(`inventory ${file}: host name '${shown(name)}' holds control characters or bytes that are not text`);
      const h = hosts.get(name) ?? { vars: {}, groups: new Set<string>() };
      for (const [k, v] of Object.entries(vars ?? {})) h.vars[k] = String(v);
      h.groups.add(groupName);
      hosts.set(name, h);
    }
    for (const [child, body] of Object.entries(g.children ?? {})) visit(child, body);
  };
  for (const [groupName, body] of Object.entries((doc ?? {}) as Record<string, unknown>)) visit(groupName, body);
  return hosts;
}

function agentAddress(address: string, port: number): string {
  return `${address.includes(':') ? `[${address}]` : address}:${port}`;
}

export async function readInventory(buildDir: string, defaultPort: number): Promise<Inventory> {
  const file = await findInventory(buildDir);
  const text = await fsp.readFile(file, 'utf8');
  const looksYaml = /\.ya?ml$/.test(file) || /^\s*(all|[\w-]+):\s*$/m.test(text.split('\n').find((l) => l.trim() && !l.trim().startsWith('#')) ?? '');
  const raw = looksYaml ? parseYaml(text, file) : parseIni(text, file);
  if (raw.size === 0) throw new InputError(`inventory ${file} lists no hosts`);

  const hosts = new Map<string, InventoryHost>();
  const uncovered = new Map<string, string[]>();
  for (const [name, h] of raw) {
    const components = new Set<ComponentName>();
    for (const g of h.groups) {
      const mapped = GROUP_COMPONENTS[g];
      if (mapped) mapped.forEach((c) => components.add(c));
      else if (!STRUCTURAL.has(g)) uncovered.set(g, [...(uncovered.get(g) ?? []), name]);
    }
    const portVar = h.vars.lsbackup_agent_port;
    const port = portVar ? Number(portVar) : defaultPort;
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new InputError(`inventory ${file}: host ${shown(name)} has lsbackup_agent_port='${shown(portVar)}', expected a port number`);
    const address = h.vars.ansible_host ?? name;
    hosts.set(name, { name, address, port, agent: agentAddress(address, port), components, groups: [...h.groups] });
  }
  return { file, hosts, notCovered: describeNotCovered(uncovered) };
}

/**
 * One line per group holding data lsbackup leaves alone (or that lsbackup does not know), and
 * one summary line for the groups with nothing to back up, so the few lines that matter stand out.
 */
export function describeNotCovered(uncovered: Map<string, string[]>): string[] {
  const lines: string[] = [];
  const stateless: string[] = [];
  for (const [g, names] of [...uncovered].sort(([a], [b]) => a.localeCompare(b))) {
    if (NOTHING_TO_BACK_UP.has(g)) stateless.push(g);
    else if (DATA_NOT_COVERED[g]) lines.push(`${g}: ${names.join(', ')} (holds ${DATA_NOT_COVERED[g]}, which lsbackup does not back up)`);
    else lines.push(`${g}: ${names.join(', ')} (not a group lsbackup knows; not backed up)`);
  }
  if (stateless.length) lines.push(`nothing to back up in ${stateless.join(', ')}`);
  return lines;
}
