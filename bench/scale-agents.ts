/**
 * Bench item 11 (issue 13): what the coordinator itself costs per node, backing up 1,000
 * simulated agents (test/helpers/sim-agents.ts: real agent servers in one process, a real
 * coordinator process, the real CLI, mutual TLS).
 *
 * Each run starts a fresh coordinator, as a daily backup finds one whose channels have gone idle
 * (grpc-js closes them after 30 min): every run pays the connections to every agent.
 *   - CPU: utime+stime of the coordinator (/proc/<pid>/stat) from just before the CLI starts the
 *     backup to just after it ends, divided by the nodes.
 *   - RSS: the coordinator's VmHWM after the backup, beside its VmRSS when it had started.
 *   - Commit: mtime of manifest.json minus the newest part.json's. An agent writes its record
 *     last, fsyncs and renames it, then answers: the last answer comes after that mtime, so the
 *     difference is at least the time from the last answer to the commit (it errs long).
 *
 *   LSBACKUP_BENCH_AGENTS=1000   how many simulated agents
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { MANIFEST, PART_RECORD, setDir } from '../common/manifest.js';
import { SimCluster } from '../test/helpers/sim-agents.js';
import { cpuOf, fmtBytes, fmtMs, median, procKiB } from './measure.js';

const MiB = 1024 * 1024;

/** A row of bench/run.ts's table. */
export interface BenchRow {
  what: string;
  ours: string;
  base: string;
  ratio: number;
  target: string;
  holds: boolean | undefined;
}

interface Run {
  ms: number;
  cpuMs: number;
  peak: number;
  started: number;
  commitMs: number;
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

async function oneRun(c: SimCluster, log: (line: string) => void): Promise<Run> {
  await c.startCoordinator();
  try {
    const pid = c.coordinator!.pid!;
    const started = await procKiB(pid, 'VmRSS');
    const cpu0 = await cpuOf([pid]);
    const t0 = Date.now();
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target], 15 * 60_000);
    const ms = Date.now() - t0;
    const cpuMs = (await cpuOf([pid])) - cpu0;
    const peak = await procKiB(pid, 'VmHWM');
    const last = r.stdout.trim().split('\n').at(-1) ?? '';
    const result = (JSON.parse(last) as { result?: { backupId: string; status: string; parts: unknown[]; reasons: string[] } }).result;
    if (r.code !== 0 || result?.status !== 'complete') throw new Error(`backup of ${c.count} simulated agents ended ${r.code}: ${(result?.reasons.slice(0, 3).join('; ') ?? '') || (r.stderr + last).slice(-1500)}`);
    if (result.parts.length !== c.count) throw new Error(`backup of ${c.count} agents has ${result.parts.length} parts`);
    const commitMs = await commitDelay(c, result.backupId);
    log(`11. ${c.count} agents: backup ${fmtMs(ms)}, coordinator CPU ${fmtMs(cpuMs)}, peak RSS ${fmtBytes(peak)}, commit ${fmtMs(commitMs)} after the last record`);
    await fsp.rm(setDir(c.target, result.backupId), { recursive: true, force: true });
    return { ms, cpuMs, peak, started, commitMs };
  } finally {
    await c.stopCoordinator();
  }
}

/** The three rows of item 11, and the notes that give every run's numbers. */
export async function scaleAgents(runs: number, log: (line: string) => void): Promise<{ rows: BenchRow[]; notes: string[] }> {
  const count = Number(process.env.LSBACKUP_BENCH_AGENTS ?? 1000);
  log(`11. making ${count} simulated agents`);
  const c = await SimCluster.create(count);
  const done: Run[] = [];
  try {
    await c.startAgents();
    for (let i = 0; i < runs; i++) done.push(await oneRun(c, log));
  } finally {
    await c.stop();
    await c.remove();
  }
  const perNode = median(done.map((r) => r.cpuMs)) / count;
  const peak = median(done.map((r) => r.peak));
  const started = median(done.map((r) => r.started));
  const commit = median(done.map((r) => r.commitMs));
  const wall = median(done.map((r) => r.ms));
  const rows: BenchRow[] = [
    { what: `11. coordinator CPU per node, CLI backup of ${count} simulated agents (fresh coordinator, mTLS)`, ours: `${perNode.toFixed(2)} ms per node (${fmtMs(perNode * count)} CPU, backup ${fmtMs(wall)})`, base: '2 ms per node (the target)', ratio: perNode / 2, target: '≤ 2 ms per node', holds: perNode <= 2 },
    { what: `11. coordinator peak RSS (VmHWM), backup of ${count} simulated agents, vs its RSS once started`, ours: fmtBytes(peak), base: fmtBytes(started), ratio: peak / started, target: '< 300 MiB', holds: peak < 300 * MiB },
    { what: `11. manifest committed after the last agent's part record, ${count} simulated agents`, ours: fmtMs(commit), base: '1 s (the target)', ratio: commit / 1000, target: '≤ 1 s', holds: commit <= 1000 },
  ];
  const notes = [
    `11. ${count} simulated agents, ${done.length} runs: backup ${done.map((r) => fmtMs(r.ms)).join(', ')}; coordinator CPU ${done.map((r) => fmtMs(r.cpuMs)).join(', ')}; peak RSS ${done.map((r) => fmtBytes(r.peak)).join(', ')}; commit after the last record ${done.map((r) => fmtMs(r.commitMs)).join(', ')}. All agents run in one process on the same cores as the coordinator, so the wall time is mostly theirs.`,
  ];
  return { rows, notes };
}
