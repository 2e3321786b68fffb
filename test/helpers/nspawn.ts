/**
 * A Debian node with a real systemd, booted with systemd-nspawn from the root scripts/test-root.sh
 * builds (cached outside the checkout). The container shares this machine's network, so what it
 * serves is on loopback; its root is a throwaway overlay, so each boot starts from the same root.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The cached root, built now when missing (a few minutes, once). */
export function testRoot(): string {
  for (const tool of ['systemd-nspawn', 'debootstrap', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      throw new Error(`${tool} is missing: install it with 'apt-get install -y systemd-container debootstrap util-linux'`);
    }
  }
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts/test-root.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 });
  if (r.status !== 0) throw new Error(`scripts/test-root.sh failed (exit ${r.status}); run it by hand to see why`);
  return r.stdout.trim().split('\n').at(-1)!;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

function descendants(pid: number): number[] {
  const out = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).stdout;
  const children = new Map<number, number[]>();
  for (const line of out.trim().split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number);
    children.set(pp!, [...(children.get(pp!) ?? []), p!]);
  }
  const all: number[] = [];
  const walk = (p: number) => (children.get(p) ?? []).forEach((c) => (all.push(c), walk(c)));
  walk(pid);
  return all;
}

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
};

export class Container {
  private constructor(
    readonly name: string,
    private readonly nspawn: ChildProcess,
    /** The container's PID 1 (its systemd), as this machine sees it. */
    readonly pid: number,
    private readonly console: () => string,
  ) {}

  /** Boots `root` as `hostname`; `binds` are host directories that appear at the same path inside. */
  static async boot(root: string, hostname: string, binds: string[], bindRo: [string, string][] = []): Promise<Container> {
    const name = `lsbackup-${hostname}-${process.pid}`;
    const args = ['-D', root, '--register=no', '--keep-unit', '--volatile=overlay', '-M', name, `--hostname=${hostname}`, ...binds.map((b) => `--bind=${b}`), ...bindRo.map(([s, d]) => `--bind-ro=${s}:${d}`), '-b'];
    const child = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));
    const deadline = Date.now() + 60_000;
    let pid = 0;
    while (Date.now() < deadline && child.exitCode === null) {
      pid = descendants(child.pid!).find((p) => comm(p) === 'systemd') ?? 0;
      if (pid) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!pid) throw new Error(`systemd-nspawn did not boot ${root}: ${out.slice(-1000)}`);
    const c = new Container(name, child, pid, () => out);
    for (;;) {
      // The root's /etc/hostname (debootstrap copies this machine's) would win over --hostname at boot.
      await c.exec(['hostname', hostname]);
      const s = (await c.exec(['systemctl', 'is-system-running'])).stdout.trim();
      if (s === 'running' || s === 'degraded') break;
      if (Date.now() > deadline) throw new Error(`container ${hostname} is '${s}' after 60 s: ${out.slice(-1000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return c;
  }

  /** Runs a command inside (all of the container's namespaces, as its root). */
  exec(cmd: string[], input?: string): Promise<ExecResult> {
    return new Promise((resolve) => {
      const child = spawn('nsenter', ['-t', String(this.pid), '-a', '--', ...cmd], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      if (input !== undefined) child.stdin!.end(input);
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  /** Like exec, but a non-zero exit is an error naming the command and its output. */
  async sh(script: string, input?: string): Promise<string> {
    const r = await this.exec(['sh', '-ec', script], input);
    if (r.code !== 0) throw new Error(`in ${this.name}: '${script.slice(0, 200)}' exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(-1500)}`);
    return r.stdout;
  }

  /** Starts a long-running process inside; the caller stops it. */
  spawn(cmd: string[], env: Record<string, string> = {}): ChildProcess {
    return spawn('nsenter', ['-t', String(this.pid), '-a', '--', 'env', ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  async writeFile(file: string, body: string, mode = 0o644): Promise<void> {
    await this.sh(`mkdir -p "$(dirname '${file}')" && cat > '${file}' && chmod ${mode.toString(8)} '${file}'`, body);
  }

  async stop(): Promise<void> {
    if (this.nspawn.exitCode !== null) return;
    const gone = new Promise((r) => this.nspawn.once('exit', r));
    await this.exec(['systemctl', 'poweroff']).catch(() => undefined);
    const timer = setTimeout(() => this.nspawn.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
  }

  get output(): string {
    return this.console();
  }
}

export async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(() => true, () => false);
}
