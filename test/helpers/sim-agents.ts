/**
 * A cluster of many simulated agents for the scale test and bench (issue 13): N real agent
 * servers in a few child processes (sim-agent-process.ts, NODES_PER_PROCESS each), each on its own loopback address
 * 127.77.X.Y, with a small per-node HAProxy directory; a real coordinator process; the real CLI;
 * a build directory that is LambdaStack's inventory (test/fixtures/lambdastack) with all N hosts
 * in the haproxy group. Calls are mutual TLS as in production.
 *
 * Certificates: the coordinator checks an agent's certificate against the inventory name of the
 * host (common/proto.ts channelOptionsFor), so each simulated node needs a certificate naming it.
 * `lsbackup certs issue` costs ~130 ms here (two openssl runs: minutes for 1,000 nodes), so each
 * certificate serves NAMES_PER_CERT nodes, its SAN listing their names; the code accepts that,
 * as it checks only the CA, the role (OU=agent) and that the SAN holds the name. Not one for all:
 * a SAN of 1,000 names made every TLS handshake cost the coordinator ~5 ms in getPeerCertificate,
 * which a real cluster (one certificate per node) does not pay. Production issues one per node.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { certsInit, certsIssue } from '../../cli/certs.js';
import { bin, freePort, spawnDaemon } from '../../demo/cluster.js';
import { placeHosts } from './lambdastack-inventory.js';
import { repoRoot, run, stopProcess, type RunResult } from './ops.js';
import type { SimConfig, SimReply, SimRequest } from './sim-agent-process.js';

const childFile = path.join(path.dirname(fileURLToPath(import.meta.url)), 'sim-agent-process.js');
const fixtures = path.join(repoRoot, 'test/fixtures/lambdastack/build/mycluster');
/** LambdaStack puts a load balancer host in these groups (and the exporters' and shippers'). */
const HOST_GROUPS = ['haproxy', 'haproxy_exporter', 'node_exporter', 'filebeat', 'firewall'];
/** The fixture's made-up hosts leave every group with data: only the simulated hosts are asked. */
const EMPTIED = ['haproxy', 'postgresql', 'prometheus', 'grafana', 'rabbitmq', 'logging', 'kibana', 'opendistro_for_elasticsearch'];
/**
 * Nodes served by one child process. A thousand in one process answered their keepalive pings
 * late on this busy 2-core machine (one event loop, a thousand backups starting at once), and the
 * coordinator dropped them as it drops a dead node; a real agent is alone in its process.
 */
const NODES_PER_PROCESS = 250;
/** A certificate's SAN names this many nodes: about as small to parse as a real agent's (name and address). */
const NAMES_PER_CERT = 10;

export interface SimNode {
  name: string;
  ip: string;
  /** Stands in for the node's `/`: its etc/haproxy and etc/ssl/haproxy are what it backs up. */
  root: string;
  /** The name of the agent certificate it presents (in pki/). */
  cert: string;
}

/** The i-th node's loopback address (0-based): 250 per /24, so 1,000 nodes are 127.77.0.1-127.77.3.250. */
function simAddress(i: number): string {
  return `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

/** A node's HAProxy files: small, with a private key's mode and a symlink, as a real node has. */
async function seedNode(n: SimNode): Promise<void> {
  const w = async (rel: string, body: string, mode = 0o644) => {
    const p = path.join(n.root, rel);
    await fsp.mkdir(path.dirname(p), { recursive: true });
    await fsp.writeFile(p, body, { mode });
  };
  await w('etc/haproxy/haproxy.cfg', `global\n  maxconn 4096\ndefaults\n  mode http\n  timeout connect 5s\nfrontend www\n  bind ${n.ip}:443\n  default_backend app\nbackend app\n  server ${n.name} ${n.ip}:8080\n`);
  await w('etc/haproxy/errors/503.http', 'HTTP/1.0 503 Service Unavailable\r\n\r\nbusy\n');
  await w('etc/ssl/haproxy/cluster.pem', `-----BEGIN PRIVATE KEY-----\nnot a real key (${n.name})\n-----END PRIVATE KEY-----\n`, 0o600);
  await fsp.symlink('cluster.pem', path.join(n.root, 'etc/ssl/haproxy/current.pem'));
}

export class SimCluster {
  readonly root: string;
  readonly buildDir: string;
  readonly target: string;
  readonly pki: string;
  readonly nodes: SimNode[] = [];
  agentPort = 0;
  private cliConfig = '';
  private coordinatorConfig = '';
  /** The processes the agents run in, NODES_PER_PROCESS each, in node order. */
  agents: ChildProcess[] = [];
  coordinator?: ChildProcess;
  private agentsOutput = '';
  /** The end of what the running coordinator logged (JSON lines). */
  coordinatorOutput = '';
  private nextId = 1;
  private readonly waiting = new Map<number, (r: { error?: string }) => void>();

  private constructor(readonly count: number) {
    this.root = mkdtempSync(path.join(os.tmpdir(), 'lsb-sim-'));
    this.buildDir = path.join(this.root, 'build/mycluster');
    this.target = path.join(this.root, 'shared/backups');
    this.pki = path.join(this.root, 'pki');
  }

  /** Certificates, node files, the build directory and every config; nothing runs yet. */
  static async create(count: number): Promise<SimCluster> {
    const c = new SimCluster(count);
    await c.setUp();
    return c;
  }

  private async setUp(): Promise<void> {
    for (let i = 0; i < this.count; i++) {
      const name = `lb${String(i + 1).padStart(4, '0')}`;
      this.nodes.push({ name, ip: simAddress(i), root: path.join(this.root, 'nodes', name), cert: `agents-${Math.floor(i / NAMES_PER_CERT)}` });
    }
    await certsInit(this.pki);
    await certsIssue(this.pki, 'coordinator', 'coordinator', ['127.0.0.1']);
    await certsIssue(this.pki, 'operator', 'operator', ['operator']);
    const certs = [...new Set(this.nodes.map((n) => n.cert))];
    // One after another: each openssl run updates the CA's serial file.
    for (const cert of certs) await certsIssue(this.pki, cert, 'agent', this.nodes.filter((n) => n.cert === cert).map((n) => n.name));
    for (let i = 0; i < this.nodes.length; i += 100) await Promise.all(this.nodes.slice(i, i + 100).map(seedNode));

    await fsp.mkdir(this.buildDir, { recursive: true });
    const inventory = await fsp.readFile(path.join(fixtures, 'inventory'), 'utf8');
    await fsp.writeFile(path.join(this.buildDir, 'inventory'), placeHosts(inventory, this.nodes.map((n) => ({ line: `${n.name} ansible_host=${n.ip}`, groups: HOST_GROUPS })), EMPTIED));
    await fsp.copyFile(path.join(fixtures, 'manifest.yml'), path.join(this.buildDir, 'manifest.yml'));

    // One port on every address, as on a real cluster: the coordinator's agent_port, not a host var.
    this.agentPort = await freePort(this.nodes[0]!.ip);
    const coordinatorPort = await freePort();
    const tls = (name: string) => ({ ca: path.join(this.pki, 'ca.crt'), cert: path.join(this.pki, `${name}.crt`), key: path.join(this.pki, `${name}.key`) });
    this.coordinatorConfig = path.join(this.root, 'coordinator.yaml');
    await fsp.writeFile(this.coordinatorConfig, YAML.stringify({ listen: `127.0.0.1:${coordinatorPort}`, agent_port: this.agentPort, log_level: 'info', unencrypted: true, tls: tls('coordinator') }));
    this.cliConfig = path.join(this.root, 'cli.yaml');
    await fsp.writeFile(this.cliConfig, YAML.stringify({ coordinator: `127.0.0.1:${coordinatorPort}`, tls: tls('operator') }));
    for (let i = 0; i < this.nodes.length; i += NODES_PER_PROCESS) {
      const sim: SimConfig = {
        nodes: this.nodes.slice(i, i + NODES_PER_PROCESS).map((n) => ({ name: n.name, listen: `${n.ip}:${this.agentPort}`, tls: tls(n.cert), paths: [path.join(n.root, 'etc/haproxy'), path.join(n.root, 'etc/ssl/haproxy')], stateDir: path.join(this.root, 'state', n.name) })),
      };
      await fsp.writeFile(path.join(this.root, `sim-agents-${i / NODES_PER_PROCESS}.json`), JSON.stringify(sim));
    }
  }

  /** Starts every agent, NODES_PER_PROCESS to a child process; resolves when all of them listen. */
  async startAgents(timeoutMs = 120_000): Promise<void> {
    const processes = Math.ceil(this.nodes.length / NODES_PER_PROCESS);
    await Promise.all(Array.from({ length: processes }, (_, i) => this.startProcess(path.join(this.root, `sim-agents-${i}.json`), timeoutMs)));
  }

  private async startProcess(configFile: string, timeoutMs: number): Promise<void> {
    const child = fork(childFile, [configFile], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.agents.push(child);
    // Kept short: enough to say why the process failed.
    const keep = (d: Buffer) => (this.agentsOutput = (this.agentsOutput + d.toString()).slice(-4000));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('message', (m: SimReply) => {
      if ('id' in m) {
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      }
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.count} simulated agents did not start within ${timeoutMs} ms: ${this.agentsOutput}`)), timeoutMs);
      const settle = (err?: Error) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      child.on('message', (m: SimReply) => {
        if ('ready' in m) settle();
        if ('failed' in m) settle(new Error(`simulated agents failed to start: ${m.failed}`));
      });
      child.once('exit', (code) => settle(new Error(`simulated agents exited with ${code}: ${this.agentsOutput}`)));
    });
  }

  private ask(op: SimRequest['op'], node: string): Promise<void> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (r) => (r.error ? reject(new Error(r.error)) : resolve()));
      const i = this.nodes.findIndex((n) => n.name === node);
      this.agents[Math.floor(i / NODES_PER_PROCESS)]!.send({ op, node, id } satisfies SimRequest);
    });
  }

  /** Takes one node's agent away as a crash would: its port closes. */
  stopAgent(node: string): Promise<void> {
    return this.ask('stop', node);
  }

  startAgent(node: string): Promise<void> {
    return this.ask('start', node);
  }

  /** `nodeArgs` go to node itself, e.g. `--cpu-prof` to see where the coordinator's time goes. */
  async startCoordinator(nodeArgs: string[] = []): Promise<void> {
    this.coordinator = await spawnDaemon([process.execPath, ...nodeArgs, bin.coordinator, '--config', this.coordinatorConfig], 'coordinator');
    this.coordinatorOutput = '';
    this.coordinator.stdout!.on('data', (d: Buffer) => (this.coordinatorOutput = (this.coordinatorOutput + d.toString()).slice(-100_000)));
  }

  async stopCoordinator(): Promise<void> {
    await stopProcess(this.coordinator);
    this.coordinator = undefined;
  }

  /** Runs the CLI as an operator would; never throws on a non-zero exit. */
  cli(args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return run(process.execPath, [bin.cli, ...args], { env: { LSBACKUP_CONFIG: this.cliConfig }, timeoutMs });
  }

  async stop(): Promise<void> {
    await Promise.all([stopProcess(this.coordinator), ...this.agents.map(stopProcess)]);
    this.agents = [];
  }

  async remove(): Promise<void> {
    await fsp.rm(this.root, { recursive: true, force: true });
  }
}
