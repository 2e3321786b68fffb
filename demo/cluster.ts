/**
 * A local LambdaStack-shaped cluster on one machine: a coordinator on 127.0.0.1 and agents on
 * 127.0.0.2, 127.0.0.3, ..., each with sandboxed component files, mTLS certificates from a fresh
 * CA, and a build directory with an Ansible inventory. The demo and the end-to-end tests use it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import YAML from 'yaml';
import { certsInit, certsIssue } from '../cli/certs.js';
import { backupKeyText, makeKeys } from '../common/keys.js';

// better-sqlite3 ships CommonJS without types; the demo only needs to create a small database.
const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (file: string) => { exec(sql: string): void; prepare(sql: string): { run(...a: unknown[]): unknown }; close(): void };

const distRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const bin = {
  agent: path.join(distRoot, 'agent/main.js'),
  coordinator: path.join(distRoot, 'coordinator/main.js'),
  cli: path.join(distRoot, 'cli/main.js'),
};

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Starts a daemon and resolves once it says it is listening; rejects with what it printed otherwise. */
export function spawnDaemon(cmd: string[], label: string, env: Record<string, string> = {}): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LSBACKUP_LOG_LEVEL: 'info', ...env } });
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening on')) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('exit', (code) => reject(new Error(`${label} exited with ${code} before listening: ${out.trim()}`)));
    setTimeout(() => reject(new Error(`${label} did not start within 15 s: ${out.trim()}`)), 15_000).unref();
  });
}

export interface DemoNode {
  name: string;
  ip: string;
  port: number;
  /** Sandbox root standing in for this node's `/`. */
  root: string;
  groups: string[];
  configFile: string;
  /** Command prefix to start the agent with, e.g. `ip netns exec <ns>` for a node on its own network. */
  wrap: string[];
  process?: ChildProcess;
}

export interface ClusterOptions {
  nodes?: number;
  /** Inventory groups per node; the default spreads the file-based components (haproxy, kibana, grafana). */
  groups?: string[][];
  extraInventory?: string;
  /**
   * Per node (by index): another address, a command prefix to start its agent with, or component
   * configs added to the ones its groups give it (e.g. elasticsearch against a test server).
   */
  nodeOverrides?: ({ ip?: string; wrap?: string[]; components?: Record<string, unknown> } | undefined)[];
  /** Environment the agents start with on top of this process's, e.g. what their systemd unit sets. */
  agentEnv?: Record<string, string>;
  /** Where backups go; default a directory in the sandbox. */
  target?: string;
  /** Extra agent config per component, merged into every node's agent config. */
  agentConfig?: Record<string, unknown>;
  /**
   * Encrypted sets (FORMAT.md "Format 4"), as an operator sets them up: `keys init` makes the
   * identity (kept here, given to the CLI) and the backup key (the coordinator's). Off: the
   * coordinator is told `unencrypted: true`.
   */
  encrypted?: boolean;
  log?: (line: string) => void;
}

const DEFAULT_GROUPS = [['haproxy', 'kibana'], ['load_balancer', 'grafana'], ['haproxy', 'opensearch_dashboards']];

/** Writes a node's sandboxed component files: small, but with the modes, owners and links real ones have. */
async function seedNodeFiles(root: string): Promise<void> {
  const w = async (rel: string, body: string | Buffer, mode = 0o644) => {
    const p = path.join(root, rel);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, body, { mode });
    await fsp.chmod(p, mode);
  };
  await w(
    'etc/haproxy/haproxy.cfg',
    ['global', '  maxconn 256', 'defaults', '  mode http', '  timeout connect 5s', '  timeout client 30s', '  timeout server 30s', 'frontend www', '  bind 127.0.0.1:18080', '  default_backend app', 'backend app', '  server a1 127.0.0.1:8080', ''].join('\n'),
  );
  await w('etc/haproxy/errors/503.http', 'HTTP/1.0 503 Service Unavailable\r\n\r\nbusy\n');
  await w('etc/ssl/haproxy/cluster.pem', '-----BEGIN PRIVATE KEY-----\nnot a real key, demo only\n-----END PRIVATE KEY-----\n', 0o600);
  await fsp.symlink('cluster.pem', path.join(root, 'etc/ssl/haproxy/current.pem')).catch(() => undefined);
  await w('etc/kibana/kibana.yml', 'server.port: 5601\nelasticsearch.hosts: ["https://localhost:9200"]\n', 0o660);
  await fsp.mkdir(path.join(root, 'var/lib/grafana'), { recursive: true });
  const db = new Sqlite(path.join(root, 'var/lib/grafana/grafana.db'));
  db.exec("CREATE TABLE IF NOT EXISTS dashboard (id INTEGER PRIMARY KEY, title TEXT NOT NULL, data TEXT NOT NULL)");
  db.prepare('INSERT INTO dashboard (title, data) VALUES (?, ?)').run('Cluster', JSON.stringify({ panels: [{ id: 1, type: 'graph' }] }));
  db.close();
  await fsp.chmod(path.join(root, 'var/lib/grafana/grafana.db'), 0o640);
  await w('var/lib/grafana/dashboards/cluster.json', JSON.stringify({ title: 'Cluster', panels: [{ id: 1, type: 'graph' }] }, null, 2));
  await w('var/lib/grafana/png/render-1.png', Buffer.alloc(1024, 1));
}

function agentConfig(n: DemoNode, pki: string, stateDir: string, extraComponents: Record<string, unknown> = {}) {
  const r = (p: string) => path.join(n.root, p);
  const components: Record<string, unknown> = { ...extraComponents };
  const has = (...g: string[]) => n.groups.some((x) => g.includes(x));
  if (has('haproxy', 'load_balancer')) components.haproxy = { paths: [r('etc/haproxy'), r('etc/ssl/haproxy')], config_file: r('etc/haproxy/haproxy.cfg') };
  if (has('kibana', 'opensearch_dashboards')) components.kibana = { config_paths: [r('etc/kibana/kibana.yml')] };
  // The demo has no Grafana server to stop and start around a restore.
  if (has('grafana')) components.grafana = { data_dir: r('var/lib/grafana'), config_paths: [], stop_command: ['true'], start_command: ['true'] };
  return {
    node: n.name,
    listen: `${n.ip}:${n.port}`,
    state_dir: stateDir,
    log_level: 'info',
    tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, `${n.name}.crt`), key: path.join(pki, `${n.name}.key`) },
    // A sandboxed node: what this machine has under /etc is not the node's.
    detect: false,
    components,
  };
}

export class DemoCluster {
  readonly root: string;
  readonly buildDir: string;
  readonly target: string;
  readonly pki: string;
  readonly nodes: DemoNode[] = [];
  cliConfig = '';
  coordinatorPort = 0;
  coordinatorConfigFile = '';
  /** With `encrypted`: the operator's identity file, which the CLI is given (LSBACKUP_IDENTITY_FILE). */
  identityFile = '';
  coordinator?: ChildProcess;
  private readonly log: (line: string) => void;

  private constructor(private readonly opts: ClusterOptions) {
    this.root = mkdtempSync(path.join(os.tmpdir(), 'lsbackup-demo-'));
    this.buildDir = path.join(this.root, 'build/demo');
    this.target = opts.target ?? path.join(this.root, 'shared/backups');
    this.pki = path.join(this.root, 'pki');
    this.log = opts.log ?? (() => undefined);
  }

  static async create(opts: ClusterOptions = {}): Promise<DemoCluster> {
    const c = new DemoCluster(opts);
    await c.setUp();
    return c;
  }

  private async setUp(): Promise<void> {
    const count = this.opts.nodes ?? 3;
    await certsInit(this.pki);
    await certsIssue(this.pki, 'coordinator', 'coordinator', ['127.0.0.1']);
    await certsIssue(this.pki, 'operator', 'operator', ['operator']);
    for (let i = 0; i < count; i++) {
      const override = this.opts.nodeOverrides?.[i];
      const ip = override?.ip ?? `127.0.0.${i + 2}`;
      const name = `node${i + 1}`;
      const root = path.join(this.root, 'nodes', name);
      const groups = (this.opts.groups ?? DEFAULT_GROUPS)[i % (this.opts.groups ?? DEFAULT_GROUPS).length]!;
      // A node in its own network namespace cannot be probed from here; any high port is free there.
      const port = override?.wrap ? 40000 + i : await freePort(ip);
      const n: DemoNode = { name, ip, port, root, groups, configFile: path.join(this.root, `agent-${name}.yaml`), wrap: override?.wrap ?? [] };
      await seedNodeFiles(root);
      await certsIssue(this.pki, name, 'agent', [ip]);
      await fsp.writeFile(n.configFile, YAML.stringify({ ...agentConfig(n, this.pki, path.join(this.root, 'state', name), override?.components), ...(this.opts.agentConfig ?? {}) }));
      this.nodes.push(n);
    }
    await fsp.mkdir(this.buildDir, { recursive: true });
    await fsp.writeFile(path.join(this.buildDir, 'inventory'), this.inventoryText());
    this.coordinatorPort = await freePort();
    this.coordinatorConfigFile = path.join(this.root, 'coordinator.yaml');
    let encryption: Record<string, unknown> = { unencrypted: true };
    if (this.opts.encrypted) {
      const keys = path.join(this.root, 'keys');
      const made = await makeKeys({ extra: [] });
      await fsp.mkdir(keys, { mode: 0o700 });
      this.identityFile = path.join(keys, 'identity.txt');
      await fsp.writeFile(this.identityFile, made.identityText, { mode: 0o600 });
      await fsp.writeFile(path.join(keys, 'backup-key.json'), backupKeyText(made.key), { mode: 0o600 });
      encryption = { backup_key_file: path.join(keys, 'backup-key.json') };
    }
    await fsp.writeFile(
      this.coordinatorConfigFile,
      YAML.stringify({
        listen: `127.0.0.1:${this.coordinatorPort}`,
        log_level: 'info',
        ...encryption,
        tls: { ca: path.join(this.pki, 'ca.crt'), cert: path.join(this.pki, 'coordinator.crt'), key: path.join(this.pki, 'coordinator.key') },
      }),
    );
    this.cliConfig = path.join(this.root, 'cli.yaml');
    await fsp.writeFile(
      this.cliConfig,
      YAML.stringify({ coordinator: `127.0.0.1:${this.coordinatorPort}`, tls: { ca: path.join(this.pki, 'ca.crt'), cert: path.join(this.pki, 'operator.crt'), key: path.join(this.pki, 'operator.key') } }),
    );
  }

  /** The inventory as LambdaStack writes it: one [group] per role, `name ansible_host=IP`. */
  inventoryText(): string {
    const groups = new Map<string, DemoNode[]>();
    for (const n of this.nodes) for (const g of n.groups) groups.set(g, [...(groups.get(g) ?? []), n]);
    const out: string[] = [];
    for (const [g, ns] of groups) {
      out.push(`[${g}]`, ...ns.map((n) => `${n.name} ansible_host=${n.ip} lsbackup_agent_port=${n.port}`), '');
    }
    out.push('[all:vars]', 'ansible_user=operations', '');
    if (this.opts.extraInventory) out.push(this.opts.extraInventory);
    return out.join('\n');
  }

  private startDaemon(file: string, config: string, label: string, wrap: string[] = [], env: Record<string, string> = {}): Promise<ChildProcess> {
    return spawnDaemon([...wrap, process.execPath, file, '--config', config], label, env);
  }

  async startAgent(n: DemoNode): Promise<void> {
    n.process = await this.startDaemon(bin.agent, n.configFile, `agent ${n.name}`, n.wrap, this.opts.agentEnv);
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.startAgent(n)));
    await this.startCoordinator();
    this.log(`coordinator on 127.0.0.1:${this.coordinatorPort}, agents on ${this.nodes.map((n) => `${n.ip}:${n.port}`).join(', ')}`);
  }

  /** Kills a node's agent as a crash would (SIGKILL) and waits until it is gone. */
  async killAgent(n: DemoNode): Promise<void> {
    const gone = new Promise((r) => n.process!.once('exit', r));
    n.process!.kill('SIGKILL');
    await gone;
  }

  async startCoordinator(): Promise<void> {
    this.coordinator = await this.startDaemon(bin.coordinator, this.coordinatorConfigFile, 'coordinator');
  }

  /** Runs the CLI as an operator would; never throws on a non-zero exit. */
  cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [bin.cli, ...args], { env: { ...process.env, LSBACKUP_CONFIG: this.cliConfig, ...(this.identityFile ? { LSBACKUP_IDENTITY_FILE: this.identityFile } : {}), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  /** The final `{result}` object of a --json run. */
  static result<T = Record<string, unknown>>(stdout: string): T {
    const last = stdout.trim().split('\n').filter(Boolean).at(-1) ?? '{}';
    const parsed = JSON.parse(last) as { result?: T; error?: string };
    if (!parsed.result) throw new Error(`no result in CLI output: ${last}`);
    return parsed.result;
  }

  async stop(): Promise<void> {
    const all = [this.coordinator, ...this.nodes.map((n) => n.process)].filter((p): p is ChildProcess => Boolean(p && p.exitCode === null && p.signalCode === null));
    await Promise.all(
      all.map(
        (p) =>
          new Promise<void>((resolve) => {
            p.once('exit', () => resolve());
            p.kill('SIGTERM');
            setTimeout(() => p.kill('SIGKILL'), 3_000).unref();
          }),
      ),
    );
  }

  async remove(): Promise<void> {
    await fsp.rm(this.root, { recursive: true, force: true });
  }
}
