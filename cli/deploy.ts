/**
 * `lsbackup deploy` and `lsbackup undeploy`: run the playbooks in deploy/ against the build
 * directory's inventory, with its SSH key, as LambdaStack runs its own roles. This is the one
 * command that does not go through the coordinator: it is what installs the coordinator.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, PreconditionError } from '../common/errors.js';
import { readClusterConfig } from '../coordinator/cluster-config.js';
import { readInventory } from '../coordinator/inventory.js';
import { plan } from '../coordinator/plan.js';
import { readBackupKey } from '../common/keys.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Where every host gets the Node.js binary the master runs: LambdaStack clusters are often offline. */
export const NODE_ON_HOSTS = '/opt/lsbackup-node/bin/node';

export interface DeployOptions {
  buildDir: string;
  target: string;
  pki: string;
  /** The master's address as the agents and the CLI see it; default: its first inventory-like address. */
  coordinatorAddress?: string;
  /** Extra lines for every agent.yaml (YAML at the top level). */
  agentExtra?: string;
  /** The backup-key.json of `lsbackup keys init` (made off the cluster): the coordinator's backup_key_file. */
  backupKey?: string;
  /** No backup key: the coordinator backs up in the clear. Never the default. */
  unencrypted?: boolean;
  log: (line: string) => void;
}

function need(program: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0) {
    throw new PreconditionError(`${program} is not installed on this master: apt-get install -y ${pkg}`);
  }
}

/** The inventory hosts that get an agent: those running a component lsbackup backs up. */
async function agentHosts(buildDir: string): Promise<{ inventory: string; hosts: string[] }> {
  const inv = await readInventory(buildDir, 50551);
  const cluster = await readClusterConfig(buildDir, inv.file);
  const hosts = [...plan(inv.hosts, [], [], cluster).hosts.keys()].map((h) => h.name).sort();
  return { inventory: inv.file, hosts };
}

/**
 * The program as every host gets it: scripts/install.sh staged into a directory, its commands
 * pointed at the carried Node.js, packed as a tar with fixed times and owners, so that the same
 * install gives the same bytes and a second deploy copies nothing.
 */
async function buildBundle(work: string, target: string, buildDir: string): Promise<string> {
  const stage = path.join(work, 'stage');
  const r = spawnSync('sh', [path.join(root, 'scripts/install.sh'), '--reuse-node-modules', '--destdir', stage, '--target', target, '--build-dir', buildDir], { encoding: 'utf8' });
  if (r.status !== 0) throw new PreconditionError(`scripts/install.sh could not stage the program: ${(r.stderr || r.stdout).trim().split('\n').at(-1)}`);
  const bin = path.join(stage, 'usr/local/bin');
  for (const name of await fsp.readdir(bin)) {
    const file = path.join(bin, name);
    const text = await fsp.readFile(file, 'utf8');
    await fsp.writeFile(file, text.replace(/^exec \S+ /m, `exec ${NODE_ON_HOSTS} `));
  }
  const bundle = path.join(work, 'lsbackup.tgz');
  const tar = spawnSync('sh', ['-c', `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf - opt usr etc/systemd | gzip -n > "$2"`, 'sh', stage, bundle], { encoding: 'utf8' });
  if (tar.status !== 0) throw new PreconditionError(`packing the program failed: ${tar.stderr.trim()}`);
  return bundle;
}

function defaultAddress(): string {
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

function runPlaybook(args: string[], log: (line: string) => void): Promise<{ code: number; recap: string[] }> {
  return new Promise((resolve) => {
    const child = spawn('ansible-playbook', args, { env: { ...process.env, ANSIBLE_FORCE_COLOR: '0', ANSIBLE_NOCOLOR: '1', ANSIBLE_RETRY_FILES_ENABLED: '0', ANSIBLE_HOST_KEY_CHECKING: 'False' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const take = (d: Buffer) => {
      out += d.toString();
      let nl: number;
      while ((nl = out.indexOf('\n')) >= 0) {
        log(out.slice(0, nl));
        out = out.slice(nl + 1);
      }
    };
    const lines: string[] = [];
    child.stdout!.on('data', (d: Buffer) => {
      lines.push(...d.toString().split('\n'));
      take(d);
    });
    child.stderr!.on('data', take);
    child.on('close', (code) => {
      if (out) log(out);
      const at = lines.findIndex((l) => l.startsWith('PLAY RECAP'));
      resolve({ code: code ?? 1, recap: at < 0 ? [] : lines.slice(at + 1).filter((l) => /\bok=\d+/.test(l)).map((l) => l.trim().replace(/\s+/g, ' ')) });
    });
  });
}

async function playbookRun(verb: 'deploy' | 'undeploy', file: string, opts: DeployOptions, vars: Record<string, unknown>): Promise<{ code: number; recap: string[] }> {
  need('ansible-playbook', 'ansible-core');
  if (!path.isAbsolute(opts.target)) throw new InputError(`target '${opts.target}' must be an absolute path`);
  const { inventory, hosts } = await agentHosts(opts.buildDir);
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'lsbackup-deploy-'));
  try {
    const extra = path.join(work, 'lsbackup-hosts');
    await fsp.writeFile(extra, `[lsbackup_agents]\n${hosts.join('\n')}\n`);
    const varsFile = path.join(work, 'vars.json');
    const cli = `${process.execPath} ${path.join(root, 'dist/cli/main.js')}`;
    const all = { lsbackup_cli: cli, lsbackup_pki: opts.pki, lsbackup_target: opts.target, lsbackup_build_dir: path.resolve(opts.buildDir), lsbackup_coordinator_address: opts.coordinatorAddress ?? defaultAddress(), lsbackup_agent_extra: opts.agentExtra ?? '', ...vars };
    if (file === 'lsbackup.yml') Object.assign(all, { lsbackup_bundle: await buildBundle(work, opts.target, path.resolve(opts.buildDir)), lsbackup_node_binary: process.execPath });
    await fsp.writeFile(varsFile, JSON.stringify(all), { mode: 0o600 });
    opts.log(`${verb}: ${hosts.length} agent host(s) from ${inventory}: ${hosts.join(', ')}`);
    return await runPlaybook(['-i', inventory, '-i', extra, '-e', `@${varsFile}`, path.join(root, 'deploy', file)], opts.log);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

export async function deploy(opts: DeployOptions): Promise<{ code: number; recap: string[] }> {
  if (!existsSync(path.join(root, 'dist/agent/main.js'))) throw new PreconditionError(`${root} has no dist/: run 'npm run build' first`);
  if (!opts.backupKey && !opts.unencrypted) throw new InputError("deploy needs --backup-key <backup-key.json>: make it with 'lsbackup keys init --dir <dir>' on a machine off the cluster, where its identity.txt stays (or pass --unencrypted to back up in the clear)");
  // Checked here, before any host is touched: a wrong file is one line, not a coordinator that does not start.
  const key = opts.backupKey ? await readBackupKey(opts.backupKey) : undefined;
  return playbookRun('deploy', 'lsbackup.yml', opts, { lsbackup_backup_key: opts.backupKey ? path.resolve(opts.backupKey) : '', lsbackup_recipients: key?.recipients.join(', ') ?? '' });
}

export function undeploy(opts: DeployOptions): Promise<{ code: number; recap: string[] }> {
  return playbookRun('undeploy', 'undeploy.yml', opts, {});
}
