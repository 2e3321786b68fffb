/**
 * Bench item 11 (issue 13): what the coordinator itself costs per node, backing up 1,000
 * simulated agents (test/helpers/sim-agents.ts: real agent servers, 250 to a process, a real
 * coordinator process, the real CLI, mutual TLS).
 *
 * Each run starts a fresh coordinator, as a daily backup finds one whose channels have gone idle
 * (grpc-js closes them after 30 min): every run pays the connections to every agent.
 *   - CPU: utime+stime of the coordinator (/proc/<pid>/stat) from just before the CLI starts the
 *     backup to just after it ends, divided by the nodes.
 *   - RSS: the coordinator's VmHWM after the backup, beside its VmRSS when it had started.
 *   - Commit: what the coordinator logs with the set's result (committedMsAfterLastAgent: from
 *     the end of the last agent's call to the manifest written), beside mtime of manifest.json
 *     minus the newest part.json's (which also counts that agent's fsync, rename and answer).
 *   - Baseline for the CPU: one mutual-TLS connection to an agent, made from this process; a
 *     fresh coordinator cannot pay less than that per node.
 *
 *   LSBACKUP_BENCH_AGENTS=1000   how many simulated agents
 */
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { MANIFEST, PART_RECORD, setDir } from '../common/manifest.js';
import { SimCluster } from '../test/helpers/sim-agents.js';
import { cpuOf, fmtBytes, fmtMs, median, procKiB, type BenchRow } from './measure.js';

const MiB = 1024 * 1024;

interface Backup {
  ms: number;
  cpuMs: number;
  /** manifest.json's mtime after the newest part.json's. */
  commitMs: number;
  /** The coordinator's own count, from the last agent's answer to the manifest written. */
  afterAnswer: number;
}

interface Run extends Backup {
  peak: number;
  started: number;
}

/** Nanoseconds of a file's mtime. */
async function mtimeNs(file: string): Promise<bigint> {
  return (await fsp.stat(file, { bigint: true })).mtimeNs;
}

/** How long after the newest part record the manifest was written, in ms. */
async function commitDelay(c: SimCluster, id: string): Promise<number> {
  const dir = setDir(c.target, id);
  let last = 0n;
  for (const n of c.nodes) last = [last, await mtimeNs(path.join(dir, n.name, 'haproxy', PART_RECORD))].reduce((a, b) => (a > b ? a : b));
  return Number((await mtimeNs(path.join(dir, MANIFEST))) - last) / 1e6;
}

/** What the coordinator logged when it had committed the set: ms from the last agent's answer to the manifest. */
function committedAfterLastAnswer(output: string, id: string): number {
  for (const line of output.trim().split('\n').reverse()) {
    const rec = (() => {
      try {
        return JSON.parse(line) as { backupId?: string; committedMsAfterLastAgent?: number };
      } catch {
        return {};
      }
    })();
    if (rec.backupId === id && typeof rec.committedMsAfterLastAgent === 'number') return rec.committedMsAfterLastAgent;
  }
  throw new Error(`the coordinator logged no commit of ${id}`);
}

/**
 * One CLI backup of every agent, measured. The set is removed afterwards: the next backup's
 * agents then find nothing of it to clean up (reading a 1,000-part manifest is each agent's cost,
 * not the coordinator's, and would be paid 250 times over in each process here).
 */
async function measuredBackup(c: SimCluster, log: (line: string) => void, what: string): Promise<Backup> {
  const pid = c.coordinator!.pid!;
  const cpu0 = await cpuOf([pid]);
  const t0 = Date.now();
  const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target], 15 * 60_000);
  const ms = Date.now() - t0;
  const cpuMs = (await cpuOf([pid])) - cpu0;
  const last = r.stdout.trim().split('\n').at(-1) ?? '';
  const result = (JSON.parse(last) as { result?: { backupId: string; status: string; parts: unknown[]; reasons: string[] } }).result;
  if (r.code !== 0 || result?.status !== 'complete') throw new Error(`${what} backup of ${c.count} simulated agents ended ${r.code}: ${(result?.reasons.slice(0, 3).join('; ') ?? '') || (r.stderr + last).slice(-1500)}`);
  if (result.parts.length !== c.count) throw new Error(`backup of ${c.count} agents has ${result.parts.length} parts`);
  const commitMs = await commitDelay(c, result.backupId);
  const afterAnswer = committedAfterLastAnswer(c.coordinatorOutput, result.backupId);
  log(`11. ${c.count} agents, ${what}: backup ${fmtMs(ms)}, coordinator CPU ${fmtMs(cpuMs)}, manifest ${fmtMs(commitMs)} after the newest record, ${fmtMs(afterAnswer)} after the last answer (coordinator's log)`);
  await fsp.rm(setDir(c.target, result.backupId), { recursive: true, force: true });
  return { ms, cpuMs, commitMs, afterAnswer };
}

/** A fresh coordinator's backup: it connects to every agent first. */
async function oneRun(c: SimCluster, log: (line: string) => void): Promise<Run> {
  await c.startCoordinator();
  try {
    const pid = c.coordinator!.pid!;
    const started = await procKiB(pid, 'VmRSS');
    const b = await measuredBackup(c, log, 'fresh coordinator');
    const peak = await procKiB(pid, 'VmHWM');
    return { ...b, peak, started };
  } finally {
    await c.stopCoordinator();
  }
}

/**
 * The least a fresh coordinator pays per node whatever it does: one mutual-TLS connection (as
 * grpc-js makes it: ALPN h2, the CA checked, the node's name checked) to an agent, measured as
 * this process's CPU over `n` connections to the simulated agents, one after another.
 */
async function tlsConnectionCpu(c: SimCluster, n: number): Promise<number> {
  const file = (f: string) => readFileSync(path.join(c.pki, f));
  const context = tls.createSecureContext({ ca: file('ca.crt'), cert: file('coordinator.crt'), key: file('coordinator.key') });
  const nodes = c.nodes.slice(0, n);
  const c0 = process.cpuUsage();
  for (const node of nodes) {
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: node.ip, port: c.agentPort, secureContext: context, servername: node.name, ALPNProtocols: ['h2'] }, () => {
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
  }
  const used = process.cpuUsage(c0);
  return (used.user + used.system) / 1000 / nodes.length;
}

/** The rows of item 11, and the notes that give every run's numbers. */
export async function scaleAgents(runs: number, log: (line: string) => void): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const count = Number(process.env.LSBACKUP_BENCH_AGENTS ?? 1000);
  log(`11. making ${count} simulated agents`);
  const c = await SimCluster.create(count);
  const done: Run[] = [];
  let tlsCpu = NaN;
  try {
    await c.startAgents();
    for (let i = 0; i < runs; i++) done.push(await oneRun(c, log));
    const tlsRuns: number[] = [];
    for (let i = 0; i < 3; i++) tlsRuns.push(await tlsConnectionCpu(c, Math.min(200, count)));
    tlsCpu = median(tlsRuns);
    log(`11. one mTLS connection: ${tlsCpu.toFixed(2)} ms of client CPU`);
  } finally {
    await c.stop();
    await c.remove();
  }
  const perNode = median(done.map((r) => r.cpuMs)) / count;
  const wall = median(done.map((r) => r.ms));
  const peak = median(done.map((r) => r.peak));
  const started = median(done.map((r) => r.started));
  const commit = median(done.map((r) => r.afterAnswer));
  const byMtime = median(done.map((r) => r.commitMs));
  const rows: BenchRow[] = [
    {
      what: `11. coordinator CPU per node, CLI backup of ${count} simulated agents (fresh coordinator), vs one mTLS connection's CPU`,
      ours: `${perNode.toFixed(2)} ms per node (${fmtMs(perNode * count)} CPU, backup ${fmtMs(wall)})`,
      base: `${tlsCpu.toFixed(2)} ms per connection`,
      ratio: perNode / tlsCpu,
      target: '≤ 2 ms per node',
      holds: perNode <= 2,
    },
    { what: `11. coordinator peak RSS (VmHWM), backup of ${count} simulated agents, vs its RSS once started`, ours: fmtBytes(peak), base: fmtBytes(started), ratio: peak / started, target: '< 300 MiB', holds: peak < 300 * MiB },
    { what: `11. set committed after the last agent's answer (coordinator's log), ${count} simulated agents`, ours: `${fmtMs(commit)} (manifest ${fmtMs(byMtime)} after the newest part record)`, base: '1 s (the target)', ratio: commit / 1000, target: '≤ 1 s', holds: commit <= 1000 },
  ];
  const list = (f: (r: Run) => number, fmt: (x: number) => string) => done.map((r) => fmt(f(r))).join(', ');
  const notes = [
    `11. ${count} simulated agents, ${done.length} runs, each on a fresh coordinator: backup ${list((r) => r.ms, fmtMs)}; coordinator CPU ${list((r) => r.cpuMs, fmtMs)}; peak RSS ${list((r) => r.peak, fmtBytes)}; set committed ${list((r) => r.afterAnswer, fmtMs)} after the last answer, manifest ${list((r) => r.commitMs, fmtMs)} after the newest part.json (which also counts the agent's fsync and rename of it). One mutual-TLS connection from Node costs ${tlsCpu.toFixed(2)} ms of client CPU on this machine (median of 3 x 200): a fresh coordinator pays that per node before it does anything. The agents run, 250 to a process, on the same 2 cores as the coordinator, so the wall time is mostly theirs.`,
  ];
  return { rows, notes };
}
