/**
 * Shared pieces of the operations tests (test/ops-*.test.ts): running programs, waiting for a
 * condition, a real Prometheus in a temp dir, fabricated backup sets, and the expansion systemd
 * applies to an ExecStart= line.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import assert from 'node:assert/strict';
import { DemoCluster, bin, freePort, type DemoNode } from '../../demo/cluster.js';
import { sealManifest } from '../../common/manifest.js';

/** The checkout: dist/test/helpers/ is three levels below it. */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Whether a program is on PATH. */
export function have(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Runs `work` while something is down (an agent, a server), and brings it back whatever happens. */
export async function whileDown<T>(down: () => Promise<unknown>, up: () => Promise<unknown>, work: () => Promise<T>): Promise<T> {
  await down();
  try {
    return await work();
  } finally {
    await up();
  }
}

/**
 * A CLI backup with one node's agent killed (and started again afterwards), checked as every such
 * backup must be: exit 1, a partial set, a reason naming the node's address as unreachable.
 * `thenCheck` sees the summary while the agent is still down.
 */
export async function backupWithAgentDown<S extends { status: string; reasons: string[] }>(c: DemoCluster, n: DemoNode, thenCheck: (s: S) => Promise<void>): Promise<void> {
  await whileDown(
    () => c.killAgent(n),
    () => c.startAgent(n),
    async () => {
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      assert.equal(r.code, 1, r.stderr);
      const s = DemoCluster.result<S>(r.stdout);
      assert.equal(s.status, 'partial');
      assert.ok(s.reasons.some((x) => x.includes(n.name) && x.includes(`${n.ip}:${n.port}`) && x.includes('unreachable')), s.reasons.join('\n'));
      await thenCheck(s);
    },
  );
}

/** Sends SIGTERM, then SIGKILL after 3 s, and waits for the exit. */
export function stopProcess(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 3_000).unref();
  });
}

// ---- Prometheus ---------------------------------------------------------------------------------

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

export class PrometheusServer {
  private constructor(
    readonly dir: string,
    readonly url: string,
    private readonly process: ChildProcess,
    private readonly output: () => string,
  ) {}

  /**
   * A real Prometheus (Debian's package) in a temp dir on a free loopback port, scraping `targets`
   * every second and evaluating `ruleFiles` every second.
   */
  static async start(opts: { targets: string[]; ruleFiles: string[]; job?: string }): Promise<PrometheusServer> {
    if (!have('prometheus')) throw new Error('prometheus is not installed: apt-get install prometheus');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'lsbackup-prom-'));
    const rules: string[] = [];
    for (const [i, f] of opts.ruleFiles.entries()) {
      const copy = path.join(dir, `rules-${i}.yml`);
      await fsp.copyFile(f, copy);
      rules.push(copy);
    }
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
      rule_files: rules,
      scrape_configs: [{ job_name: opts.job ?? 'lsbackup', static_configs: [{ targets: opts.targets }] }],
    };
    await fsp.writeFile(path.join(dir, 'prometheus.yml'), YAML.stringify(config));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const child = spawn(
      'prometheus',
      [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const server = new PrometheusServer(dir, url, child, () => out);
    try {
      await waitFor('Prometheus to be ready', async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${out.trim()}`);
        const r = await fetch(`${url}/-/ready`);
        return r.ok;
      });
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  log(): string {
    return this.output();
  }

  async api<T>(p: string): Promise<T> {
    const r = await fetch(`${this.url}${p}`);
    const body = (await r.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`Prometheus ${p}: ${body.error}`);
    return body.data;
  }

  async alerts(): Promise<PromAlert[]> {
    return (await this.api<{ alerts: PromAlert[] }>('/api/v1/alerts')).alerts;
  }

  /** The value of a one-series instant query, or undefined when it has no result. */
  async value(query: string): Promise<number | undefined> {
    const d = await this.api<{ result: { value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(query)}`);
    return d.result[0] ? Number(d.result[0].value[1]) : undefined;
  }

  /**
   * Waits until an alert with this name (and these labels, when given) is firing, or until no
   * alert of that name is pending or firing at all ('inactive').
   */
  async waitForAlert(name: string, state: 'firing' | 'inactive', labels: Record<string, string> = {}, timeoutMs = 30_000): Promise<PromAlert | undefined> {
    const matches = (a: PromAlert) => a.labels.alertname === name && Object.entries(labels).every(([k, v]) => a.labels[k] === v);
    const found = await waitFor(
      `alert ${name}${Object.keys(labels).length ? ` ${JSON.stringify(labels)}` : ''} to be ${state}`,
      async () => {
        const all = (await this.alerts()).filter(matches);
        if (state === 'inactive') return all.length === 0 ? { alert: undefined } : false;
        const firing = all.find((a) => a.state === 'firing');
        return firing ? { alert: firing } : false;
      },
      timeoutMs,
    );
    return found.alert;
  }

  async stop(): Promise<void> {
    await stopProcess(this.process);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

// ---- backup sets --------------------------------------------------------------------------------

/** A set id for a moment: YYYYMMDDTHHMMSSZ. */
export function idAt(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/**
 * Copies a committed set to a new id (an older one, say), rewriting the id, and optionally the
 * status, inside its manifest, as if a backup had made it at that time.
 */
export async function fabricateSet(target: string, fromId: string, newId: string, patch: { status?: string } = {}): Promise<void> {
  const dest = path.join(target, newId);
  await fsp.cp(path.join(target, fromId), dest, { recursive: true, preserveTimestamps: true });
  const file = path.join(dest, 'manifest.json');
  const m = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
  m.id = newId;
  if (patch.status) {
    m.status = patch.status;
    m.reasons = [`node2/haproxy: fabricated ${patch.status} set`];
  }
  // Sealed again, as the coordinator would have written it: a set made by hand is not a corrupt one.
  await fsp.writeFile(file, JSON.stringify(sealManifest(m), null, 2), { mode: 0o600 });
}

/** A set directory without a manifest: a run that never committed. */
export async function fabricateIncomplete(target: string, id: string): Promise<void> {
  await fsp.mkdir(path.join(target, id, 'node1/haproxy'), { recursive: true, mode: 0o700 });
  await fsp.writeFile(path.join(target, id, 'node1/haproxy/files.tar.gz'), 'half written', { mode: 0o600 });
}

export async function setIds(target: string): Promise<string[]> {
  return (await fsp.readdir(target)).filter((n) => /^\d{8}T\d{6}Z$/.test(n)).sort();
}

// ---- systemd ------------------------------------------------------------------------------------

/** The [Service] assignments of a unit file, in order (keys may repeat). */
export function unitEntries(text: string, section = 'Service'): [string, string][] {
  const out: [string, string][] = [];
  let current = '';
  // Continuation lines end with a backslash.
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = sec[1]!;
      continue;
    }
    if (current !== section) continue;
    const eq = line.indexOf('=');
    if (eq > 0) out.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return out;
}

/** Splits a systemd command line or Environment= value into words, honouring quotes. */
function splitWords(s: string): string[] {
  const words: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of s.matchAll(re)) words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : (m[2] ?? m[3]!));
  return words;
}

/** KEY=value lines of an EnvironmentFile= (comments and blank lines skipped, quotes removed). */
export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`not an environment assignment: ${line}`);
    let v = m[2]!.trim();
    if (/^".*"$|^'.*'$/.test(v)) v = v.slice(1, -1);
    env[m[1]!] = v;
  }
  return env;
}

/**
 * The environment and the argument vectors of a unit's ExecStart= lines as systemd builds them
 * (systemd.service(5), "Command lines"): Environment= first, EnvironmentFile= over it; "${X}"
 * inside a word is replaced and stays one word, "$X" as a whole word is split at whitespace.
 */
export async function expandExecStart(unitText: string): Promise<{ env: Record<string, string>; commands: string[][] }> {
  const entries = unitEntries(unitText);
  const env: Record<string, string> = {};
  for (const [, v] of entries.filter(([k]) => k === 'Environment')) {
    for (const w of splitWords(v)) {
      const eq = w.indexOf('=');
      env[w.slice(0, eq)] = w.slice(eq + 1);
    }
  }
  for (const [, v] of entries.filter(([k]) => k === 'EnvironmentFile')) {
    const optional = v.startsWith('-');
    const file = optional ? v.slice(1) : v;
    const text = await fsp.readFile(file, 'utf8').catch((err) => {
      if (optional) return '';
      throw err;
    });
    Object.assign(env, parseEnvironmentFile(text));
  }
  const commands = entries
    .filter(([k]) => k === 'ExecStart')
    .map(([, v]) => {
      const words = splitWords(v.replace(/^[-@:+!]+/, ''));
      const argv: string[] = [];
      for (const w of words) {
        const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
        if (whole) argv.push(...(env[whole[1]!] ?? '').split(/\s+/).filter(Boolean));
        else argv.push(w.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => env[name] ?? ''));
      }
      return argv;
    });
  return { env, commands };
}

/** A progress event as `lsbackup --json` prints it. */
export interface CliEvent {
  node: string;
  component?: string;
  phase: string;
  bytesDone: number;
  backupId: string;
}

/** Any `lsbackup --json <args>` run, its events handed to `onEvent` as they arrive. */
/** `onEvent` also gets the CLI's process, to signal it (Ctrl-C is SIGINT). */
export function cliWatching(c: DemoCluster, args: string[], onEvent: (ev: CliEvent, cli: ChildProcess) => void) {
  const child = spawn(process.execPath, [bin.cli, '--json', ...args], { env: { ...process.env, LSBACKUP_CONFIG: c.cliConfig } });
  let out = '';
  let err = '';
  let pending = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    pending += d.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const l of lines) {
      const parsed = JSON.parse(l) as { event?: Parameters<typeof onEvent>[0] };
      if (parsed.event) onEvent(parsed.event, child);
    }
  });
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code: code ?? 1, stdout: out, stderr: err })));
}

