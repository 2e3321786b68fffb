/**
 * Timing, medians, shell baselines, process memory and the machine description for the bench.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

/** A row of the results table. */
export interface BenchRow {
  what: string;
  ours: string;
  base: string;
  /** lsbackup / baseline: times, or memory for the RSS rows, or line length / limit. */
  ratio: number;
  target: string;
  holds: boolean | undefined;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Wall time of `fn` in milliseconds. */
export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Runs a bash command line with pipefail; rejects with its stderr on a non-zero exit. */
export function sh(script: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', script], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`'${script}' exited ${code}: ${err.trim().slice(0, 2000)}`))));
  });
}

export const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A field of /proc/<pid>/status in bytes (VmHWM, VmRSS, ...). */
export async function procKiB(pid: number, field: 'VmHWM' | 'VmRSS' | 'VmPeak'): Promise<number> {
  const status = await fsp.readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

/** CPU time (user + system, ms) the processes have used so far (0 for one that is gone). */
export async function cpuOf(pids: number[]): Promise<number> {
  let ms = 0;
  const tick = 1000 / 100; // USER_HZ is 100 on Linux
  for (const pid of pids) {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f.length > 12) ms += (Number(f[11]) + Number(f[12])) * tick;
  }
  return ms;
}

/** Writes back dirty pages so one measurement's writes do not land in the next one's time. */
export async function settle(): Promise<void> {
  await sh('sync');
}

export interface Machine {
  cpu: string;
  cores: number;
  ramBytes: number;
  node: string;
  os: string;
  diskFreeBytes: number;
  diskPath: string;
  date: string;
  tools: string;
}

export async function machine(tmp: string): Promise<Machine> {
  const st = await fsp.statfs(tmp);
  const ver = async (cmd: string) => (await sh(`${cmd} 2>&1 | head -1`).catch(() => 'n/a')).trim();
  let cpu = os.cpus()[0]?.model.trim() ?? 'unknown';
  const lscpu = await sh('lscpu').catch(() => '');
  const mhz = /^CPU max MHz:\s+(\S+)/m.exec(lscpu)?.[1] ?? /^CPU MHz:\s+(\S+)/m.exec(lscpu)?.[1];
  if (mhz) cpu += ` @ ${Math.round(Number(mhz))} MHz`;
  return {
    cpu,
    cores: os.cpus().length,
    ramBytes: os.totalmem(),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    diskFreeBytes: Number(st.bavail) * Number(st.bsize),
    diskPath: tmp,
    date: new Date().toISOString(),
    tools: [await ver('tar --version'), await ver('gzip --version'), await ver('sha256sum --version'), await ver('cp --version')].join('; '),
  };
}

export function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function fmtMs(ms: number): string {
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

/** MB/s (10^6) for `bytes` in `ms`. */
export function rate(bytes: number, ms: number): string {
  return `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`;
}
