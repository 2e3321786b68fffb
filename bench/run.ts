/**
 * `npm run bench`: lsbackup against the plain tools on the same data, in the same run, on the same
 * machine. Prints one table and writes it, with the machine description, to bench/RESULTS.md.
 *
 *   LSBACKUP_BENCH_SCALE=0.1   every data size times 0.1 (quick run); default 1
 *   LSBACKUP_BENCH_RUNS=5      timed runs per contender (median reported); default 3, minimum 3
 *   LSBACKUP_BENCH_ONLY=1,4    only these items (1-15); default all. The rows of the other items
 *                              stay in RESULTS.md, marked with the run they came from
 *   LSBACKUP_BENCH_OUT=file    where to write the results; default bench/RESULTS.md
 *   LSBACKUP_BENCH_KEEP=1      leave the temp directory for inspection
 *   LSBACKUP_BENCH_NO_UNIT_ENV=1  start the row-6 agent without its unit's Environment= lines
 */
import { mkdtempSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesComponent } from '../agent/components/files.js';
import { postgresql, postgresqlSchema } from '../agent/components/postgresql.js';
import { checkArtifacts } from '../common/verify.js';
import { setDir as setDirOf } from '../common/manifest.js';
import { DemoCluster, bin } from '../demo/cluster.js';
import { backupLocal, restoreLocal, runtimeOf } from '../test/helpers/harness.js';
import { PG_BIN, PgCluster } from '../test/helpers/postgres.js';
import { GiB, KiB, MiB, benchScale, linkTree, makeRandomSet, makeTextSet, type DataSet } from './data.js';
import { byItem, earlierResults } from './earlier-results.js';
import { cpuOf, fmtBytes, fmtMs, machine, median, procKiB, q, rate, settle, sh, timeIt, type Machine } from './measure.js';
import type { BenchRow as Row } from './measure.js';
import { scaleAgents } from './scale-agents.js';
import { ScaleBench, type BenchKit } from './scale-files.js';
import { incremental } from './incremental.js';
import { encryptionCost } from './encryption.js';
import { pruneCost } from './prune-gc.js';

const scale = benchScale();
const RUNS = Math.max(3, Number(process.env.LSBACKUP_BENCH_RUNS ?? 3));
const ONLY = new Set((process.env.LSBACKUP_BENCH_ONLY ?? '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15').split(',').map((s) => Number(s.trim())));
const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench');
const OUT = process.env.LSBACKUP_BENCH_OUT ?? path.join(benchDir, 'RESULTS.md');

const sized = (bytes: number) => Math.max(64 * KiB, Math.round(bytes * scale));
const SET_BYTES = sized(GiB);
const BIG_BYTES = 4 * SET_BYTES;
const NODE_BYTES = sized(MiB);
const PG_SCALE = Math.max(1, Math.round(70 * scale));
const FANOUT = [1, 4, 16];
/** The server's own background work (autovacuum after a load, checkpoints) makes PostgreSQL runs noisier. */
const PG_RUNS = Math.max(RUNS, 5);

const rows: Row[] = [];
const notes: string[] = [];

function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

function timeRow(what: string, ours: number[], base: number[], limit: number | undefined, target: string, extra?: { oursCpu?: number[]; baseCpu?: number[]; bytes?: number }): Row {
  const o = median(ours);
  const b = median(base);
  const cpu = (xs?: number[]) => (xs && xs.length ? `, CPU ${fmtMs(median(xs))}` : '');
  const thr = (ms: number) => (extra?.bytes ? `, ${rate(extra.bytes, ms)}` : '');
  const row: Row = {
    what,
    ours: `${fmtMs(o)}${thr(o)}${cpu(extra?.oursCpu)}`,
    base: `${fmtMs(b)}${thr(b)}${cpu(extra?.baseCpu)}`,
    ratio: o / b,
    target,
    holds: limit === undefined ? undefined : o / b <= limit,
  };
  rows.push(row);
  notes.push(`${what}: lsbackup runs ${ours.map(fmtMs).join(', ')}; baseline runs ${base.map(fmtMs).join(', ')}`);
  log(`${what}: ${row.ours} vs ${row.base} -> ${row.ratio.toFixed(2)}`);
  return row;
}

/** CPU time (user+sys, ms) of the bench process around `fn`, which runs in-process. */
async function inProcess(fn: () => Promise<unknown>): Promise<{ ms: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const ms = await timeIt(fn);
  const c = process.cpuUsage(c0);
  return { ms, cpu: (c.user + c.system) / 1000 };
}

/** Wall and CPU time (user+sys of the shell and everything it waited for) of a shell pipeline. */
async function shell(script: string, tmp: string): Promise<{ ms: number; cpu: number }> {
  const tf = path.join(tmp, `.time-${process.pid}`);
  const ms = await timeIt(() => sh(`/usr/bin/time -f '%U %S' -o ${q(tf)} bash -o pipefail -c ${q(script)}`));
  const [u, s] = (await fsp.readFile(tf, 'utf8')).trim().split('\n').at(-1)!.split(/\s+/).map(Number);
  return { ms, cpu: ((u ?? 0) + (s ?? 0)) * 1000 };
}

async function rmrf(p: string): Promise<void> {
  await fsp.rm(p, { recursive: true, force: true });
}

interface Contender {
  setup?: () => Promise<unknown>;
  run: () => Promise<{ ms: number; cpu: number }>;
}

/** Runs the contenders in turn, `runs` rounds, each after its own untimed setup; returns wall and CPU ms per contender. */
async function rounds(cs: Contender[], runs = RUNS): Promise<{ ms: number[]; cpu: number[] }[]> {
  const out = cs.map(() => ({ ms: [] as number[], cpu: [] as number[] }));
  for (let i = 0; i < runs; i++) {
    // Rotate who goes first, so no contender always runs on a cache another one warmed.
    for (let j = 0; j < cs.length; j++) {
      const k = (i + j) % cs.length;
      await cs[k]!.setup?.();
      await settle();
      const t = await cs[k]!.run();
      out[k]!.ms.push(t.ms);
      out[k]!.cpu.push(t.cpu);
    }
  }
  return out;
}

/** Two contenders: lsbackup (a) and the baseline (b). */
async function alternate(a: Contender, b: Contender, runs = RUNS) {
  const [ra, rb] = await rounds([a, b], runs);
  return { a: ra!.ms, aCpu: ra!.cpu, b: rb!.ms, bCpu: rb!.cpu };
}

type Backup = Awaited<ReturnType<typeof backupLocal>>;

/** lsbackup backing up into an emptied `target` in this process; a set that is not complete stops the bench. */
function backupContender(rt: Parameters<typeof backupLocal>[0], target: string, onSet: (b: Backup) => void = () => undefined): Contender {
  return {
    setup: () => rmrf(target),
    run: () =>
      inProcess(async () => {
        const b = await backupLocal(rt, target);
        if (b.manifest.status !== 'complete') throw new Error(`backup ${b.manifest.status}: ${b.manifest.reasons.join('; ')}`);
        onSet(b);
      }),
  };
}

/** `tar -czf` of a data set's directory into a fresh `tgz`. */
function tarContender(data: DataSet, tgz: string, tmp: string): Contender {
  return { setup: () => rmrf(tgz), run: () => shell(`tar -czf ${q(tgz)} -C ${q(path.dirname(data.root))} ${q(path.basename(data.root))}`, tmp) };
}

// ---------------------------------------------------------------------------------------------

interface Ctx {
  tmp: string;
  text?: DataSet;
  random?: DataSet;
  /** The last lsbackup set of the text data (item 1), for the restore (item 4). */
  textSet?: { target: string; id: string; stateDir: string };
  textTgz?: string;
  /** The last lsbackup set of the random data (item 2), for verify (item 3). */
  randomSet?: { target: string; id: string };
}

async function textData(ctx: Ctx): Promise<DataSet> {
  if (!ctx.text) {
    log(`generating ${fmtBytes(SET_BYTES)} of JSON-lines text`);
    ctx.text = await makeTextSet(path.join(ctx.tmp, 'src-text', 'data'), SET_BYTES, { max: Math.min(50 * MiB, Math.floor(SET_BYTES / 2)) });
  }
  return ctx.text;
}

async function randomData(ctx: Ctx): Promise<DataSet> {
  if (!ctx.random) {
    log(`generating ${fmtBytes(SET_BYTES)} of random data`);
    ctx.random = await makeRandomSet(path.join(ctx.tmp, 'src-random', 'data'), SET_BYTES, { max: Math.min(50 * MiB, Math.floor(SET_BYTES / 2)) });
  }
  return ctx.random;
}

/** An in-process agent whose one component is a data set's directory, at a compression level. */
async function filesRuntime(data: DataSet, stateDir: string, level: number): Promise<ReturnType<typeof runtimeOf>> {
  await fsp.mkdir(stateDir, { recursive: true });
  const rt = runtimeOf([filesComponent('haproxy', [data.root])], stateDir);
  rt.compressionLevel = level;
  return rt;
}

async function item1(ctx: Ctx): Promise<void> {
  const data = await textData(ctx);
  const stateDir = path.join(ctx.tmp, 'state-text');
  const rt = await filesRuntime(data, stateDir, 6);
  const target = path.join(ctx.tmp, 'sets-text');
  const tgz = path.join(ctx.tmp, 'text.tar.gz');
  let id = '';
  let zipBytes = 0;
  const r = await alternate(
    backupContender(rt, target, (b) => {
      id = b.id;
      zipBytes = b.manifest.parts[0]!.bytes;
    }),
    tarContender(data, tgz, ctx.tmp),
  );
  const tgzBytes = (await fsp.stat(tgz)).size;
  timeRow(`1. back up ${fmtBytes(data.bytes)} text (${data.files} files), deflate 6 vs tar -czf`, r.a, r.b, 1.0, '≤ 1.00', { oursCpu: r.aCpu, baseCpu: r.bCpu, bytes: data.bytes });
  notes.push(`1. output: lsbackup zip ${fmtBytes(zipBytes)}, tar.gz ${fmtBytes(tgzBytes)} (input ${fmtBytes(data.bytes)}, ${data.files} files, largest ${fmtBytes(data.largest)})`);
  ctx.textSet = { target, id, stateDir };
  ctx.textTgz = tgz;
}

async function item2(ctx: Ctx): Promise<void> {
  const data = await randomData(ctx);
  const stateDir = path.join(ctx.tmp, 'state-random');
  const rt = await filesRuntime(data, stateDir, 0);
  const target = path.join(ctx.tmp, 'sets-random');
  const copy = path.join(ctx.tmp, 'cp-random');
  let id = '';
  // cp leaves its copy in the page cache unsynced; lsbackup fsyncs its archive before reporting
  // it, so cp -a + sync is timed too, as the same durability.
  const [ours, cp, cpSync, cpSumSync] = await rounds([
    backupContender(rt, target, (b) => (id = b.id)),
    { setup: () => rmrf(copy), run: () => shell(`cp -a ${q(data.root)} ${q(copy)}`, ctx.tmp) },
    { setup: () => rmrf(copy), run: () => shell(`cp -a ${q(data.root)} ${q(copy)} && sync -f ${q(copy)}`, ctx.tmp) },
    {
      setup: () => rmrf(copy),
      run: () => shell(`cp -a ${q(data.root)} ${q(copy)} && find ${q(copy)} -type f -print0 | xargs -0 sha256sum > /dev/null && sync -f ${q(copy)}`, ctx.tmp),
    },
  ]);
  timeRow(`2. back up ${fmtBytes(data.bytes)} random (${data.files} files), level 0 vs cp -a`, ours!.ms, cp!.ms, 1 / 0.9, '≤ 1.11 (≥ 0.9× cp throughput)', { oursCpu: ours!.cpu, baseCpu: cp!.cpu, bytes: data.bytes });
  timeRow(`2b. same lsbackup runs vs cp -a + sync (the durability lsbackup gives)`, ours!.ms, cpSync!.ms, undefined, 'info', { oursCpu: ours!.cpu, baseCpu: cpSync!.cpu, bytes: data.bytes });
  timeRow(`2c. same lsbackup runs vs cp -a + sha256sum of the copy + sync (the checksums and durability lsbackup gives)`, ours!.ms, cpSumSync!.ms, undefined, 'info', {
    oursCpu: ours!.cpu,
    baseCpu: cpSumSync!.cpu,
    bytes: data.bytes,
  });
  await rmrf(copy);
  ctx.randomSet = { target, id };

  // The same data at the default level: files that do not compress are stored (FORMAT.md), so the
  // backup costs about what level 0 does, where tar -czf deflates every byte for nothing.
  const rt6 = await filesRuntime(data, stateDir, 6);
  const target6 = path.join(ctx.tmp, 'sets-random-6');
  const tgz = path.join(ctx.tmp, 'random.tar.gz');
  const r6 = await alternate(backupContender(rt6, target6), tarContender(data, tgz, ctx.tmp));
  timeRow(`2d. back up the same random data at deflate 6 (incompressible files are stored) vs tar -czf`, r6.a, r6.b, undefined, 'info', { oursCpu: r6.aCpu, baseCpu: r6.bCpu, bytes: data.bytes });
  await rmrf(target6);
  await rmrf(tgz);
}

async function item3(ctx: Ctx): Promise<void> {
  if (!ctx.randomSet) await item2(ctx);
  const { target, id } = ctx.randomSet!;
  const manifest = JSON.parse(await fsp.readFile(path.join(setDirOf(target, id), 'manifest.json'), 'utf8')) as { parts: Parameters<typeof checkArtifacts>[1] };
  const dir = setDirOf(target, id);
  const files = manifest.parts.flatMap((p) => p.artifacts.map((a) => path.join(dir, a.path)));
  const bytes = manifest.parts.flatMap((p) => p.artifacts).reduce((s, a) => s + a.size, 0);
  const r = await alternate(
    {
      run: () =>
        inProcess(async () => {
          const bad = await checkArtifacts(dir, manifest.parts);
          if (bad.length) throw new Error(`verify found: ${bad.join('; ')}`);
        }),
    },
    { run: () => shell(`sha256sum ${files.map(q).join(' ')} > /dev/null`, ctx.tmp) },
  );
  timeRow(`3. verify a ${fmtBytes(bytes)} set (checkArtifacts) vs sha256sum`, r.a, r.b, 1 / 0.7, '≤ 1.43 (≥ 0.7× sha256sum throughput)', { oursCpu: r.aCpu, baseCpu: r.bCpu, bytes });
}

async function item4(ctx: Ctx): Promise<void> {
  if (!ctx.textSet) await item1(ctx);
  const data = ctx.text!;
  const { target, id, stateDir } = ctx.textSet!;
  const rt = await filesRuntime(data, stateDir, 6);
  const wipe = async () => {
    await rmrf(data.root);
    await rmrf(path.join(stateDir, 'rollback'));
  };
  const r = await alternate(
    {
      setup: wipe,
      run: () =>
        inProcess(async () => {
          const { results } = await restoreLocal(rt, target, id);
          const bad = results.filter((x) => x.status !== 'ok');
          if (bad.length) throw new Error(`restore failed: ${bad.map((x) => x.reason).join('; ')}`);
        }),
    },
    { setup: wipe, run: () => shell(`tar -xzf ${q(ctx.textTgz!)} -C ${q(path.dirname(data.root))}`, ctx.tmp) },
  );
  timeRow(`4. restore ${fmtBytes(data.bytes)} text into a wiped directory vs tar -xzf`, r.a, r.b, 1.2, '≤ 1.20', { oursCpu: r.aCpu, baseCpu: r.bCpu, bytes: data.bytes });
  await rmrf(path.join(stateDir, 'rollback'));
}

/** The environment systemd gives the agent (its unit's Environment= lines): measure the agent as it runs. */
async function agentUnitEnv(): Promise<Record<string, string>> {
  const unit = await fsp.readFile(path.join(benchDir, '../systemd/lsbackup-agent.service'), 'utf8');
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=(\w+)=(\S*)$/gm)) env[m[1]!] = m[2]!;
  return env;
}

/** Starts agents one after another (16 at once on 2 busy cores can miss the 15 s start timeout), then the coordinator. */
async function startCluster(c: DemoCluster): Promise<void> {
  for (const n of c.nodes) await c.startAgent(n);
  const priv = c as unknown as { coordinator?: unknown; startDaemon(file: string, config: string, label: string): Promise<unknown> };
  priv.coordinator = await priv.startDaemon(bin.coordinator, c.coordinatorConfigFile, 'coordinator');
}

async function cliBackup(c: DemoCluster, target: string): Promise<void> {
  const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', target]);
  if (r.code !== 0) throw new Error(`backup exited ${r.code}: ${(r.stderr + r.stdout).slice(-1500)}`);
  const s = DemoCluster.result<{ status: string }>(r.stdout);
  if (s.status !== 'complete') throw new Error(`backup ${s.status}`);
}

async function item5(ctx: Ctx): Promise<void> {
  const seed = path.join(ctx.tmp, 'node-data');
  const d = await makeTextSet(seed, NODE_BYTES, { min: KiB, max: Math.max(KiB, Math.floor(NODE_BYTES / 4)), seed: 5 });
  const clusters: DemoCluster[] = [];
  try {
    for (const n of FANOUT) {
      log(`fan-out: starting ${n} agent(s)`);
      const c = await DemoCluster.create({ nodes: n, groups: [['haproxy']], agentEnv: await agentUnitEnv() });
      clusters.push(c);
      for (const node of c.nodes) await sh(`cp -a ${q(seed)} ${q(path.join(node.root, 'etc/haproxy/data'))}`);
      await startCluster(c);
      // First connections and JIT: every agent's code is cold until it has done a few backups.
      for (let w = 0; w < 2; w++) await cliBackup(c, path.join(c.root, `warmup-${w}`));
    }
    const times = new Map<number, number[]>(FANOUT.map((n) => [n, []]));
    const agentCpu = new Map<number, number[]>(FANOUT.map((n) => [n, []]));
    const coordCpu = new Map<number, number[]>(FANOUT.map((n) => [n, []]));
    for (let i = 0; i < RUNS; i++) {
      // Interleaved rounds: a load spike from elsewhere hits every N alike.
      for (const [k, c] of clusters.entries()) {
        const n = FANOUT[k]!;
        const target = path.join(c.root, `run-${i}`);
        await settle();
        const pids = c.nodes.map((x) => x.process!.pid!);
        const coord = (c as unknown as { coordinator: { pid: number } }).coordinator.pid;
        const a0 = await cpuOf(pids);
        const c0 = await cpuOf([coord]);
        times.get(n)!.push(await timeIt(() => cliBackup(c, target)));
        agentCpu.get(n)!.push((await cpuOf(pids)) - a0);
        coordCpu.get(n)!.push((await cpuOf([coord])) - c0);
        await rmrf(target);
      }
    }
    for (const n of FANOUT) {
      const a = median(agentCpu.get(n)!);
      notes.push(
        `5. N=${n}: CPU per backup (median) — all agents together ${fmtMs(a)} (${fmtMs(a / n)} per agent), coordinator ${fmtMs(median(coordCpu.get(n)!))}; ` +
          `with every agent on these ${os.cpus().length} cores, the agents' CPU alone needs ≥ ${fmtMs(a / os.cpus().length)} of wall time`,
      );
    }
    const base = times.get(1)!;
    for (const n of FANOUT.slice(1)) {
      timeRow(
        `5. CLI backup of ${n} agents vs 1 agent (${fmtBytes(d.bytes)} + seed files per node, deflate 6)`,
        times.get(n)!,
        base,
        n === 16 ? 1.3 : undefined,
        n === 16 ? '≤ 1.30' : 'info',
      );
    }
  } finally {
    for (const c of clusters) {
      await c.stop();
      await c.remove();
    }
    await rmrf(seed);
  }
}

async function item6(ctx: Ctx): Promise<void> {
  const data = await textData(ctx);
  const agentEnv = process.env.LSBACKUP_BENCH_NO_UNIT_ENV ? {} : await agentUnitEnv();
  const c = await DemoCluster.create({ nodes: 1, groups: [['haproxy']], agentEnv });
  try {
    const node = c.nodes[0]!;
    const copies = Math.round(BIG_BYTES / data.bytes);
    // Hard links: the agent reads 4 full copies, without writing 4 GiB more to the disk first.
    for (let i = 0; i < copies; i++) await linkTree(data.root, path.join(node.root, 'etc/haproxy', `copy${i}`));
    await startCluster(c);
    const pid = node.process!.pid!;
    const peaks: number[] = [];
    const idles: number[] = [];
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const target = path.join(c.root, `sets-${i}`);
      await settle();
      // Writing 5 to clear_refs resets VmHWM to the current RSS: each run's peak is its own.
      await fsp.writeFile(`/proc/${pid}/clear_refs`, '5');
      idles.push(await procKiB(pid, 'VmHWM'));
      times.push(await timeIt(() => cliBackup(c, target)));
      peaks.push(await procKiB(pid, 'VmHWM'));
      await rmrf(target);
    }
    const peak = median(peaks);
    const idle = idles[0]!; // the fresh agent; after a backup its heap stays grown
    const ms = median(times);
    const limit = 150 * MiB;
    rows.push({
      what: `6. agent peak RSS (VmHWM) backing up ${fmtBytes(copies * data.bytes)} (${copies * data.files} files, deflate 6), environment ${JSON.stringify(agentEnv)} as its unit sets, vs the fresh agent before its first backup`,
      ours: `${fmtBytes(peak)} (backup ${fmtMs(ms)}, ${rate(copies * data.bytes, ms)})`,
      base: `${fmtBytes(idle)}`,
      ratio: peak / idle,
      target: '< 150 MiB',
      holds: peak < limit,
    });
    notes.push(`6. peaks ${peaks.map(fmtBytes).join(', ')}; before each backup ${idles.map(fmtBytes).join(', ')}; backup times ${times.map(fmtMs).join(', ')}`);
    log(`6. peak ${fmtBytes(peak)}, before ${fmtBytes(idle)}, backup ${fmtMs(ms)}`);
  } finally {
    await c.stop();
    await c.remove();
  }
}

async function item7(ctx: Ctx): Promise<void> {
  log(`PostgreSQL: initdb and pgbench -i -s ${PG_SCALE}`);
  const pg = await PgCluster.primary('bench-super-pw');
  try {
    const sock = `-h ${q(pg.sockDir)} -p ${pg.port} -U postgres`;
    await pg.sql('postgres', 'CREATE DATABASE bench');
    await sh(`${PG_BIN}/pgbench ${sock} -i -q -s ${PG_SCALE} bench > /dev/null 2>&1`);
    await sh(`${PG_BIN}/psql -X -q ${sock} -d bench -c 'VACUUM ANALYZE' > /dev/null`);
    const dbBytes = Number(await pg.sql('postgres', "SELECT pg_database_size('bench')"));
    const conf = path.join(ctx.tmp, 'pgconf');
    await fsp.mkdir(conf, { recursive: true });
    await fsp.copyFile(path.join(pg.data, 'postgresql.conf'), path.join(conf, 'postgresql.conf'));
    await fsp.mkdir(path.join(ctx.tmp, 'state-pg'), { recursive: true });
    const rt = runtimeOf(
      [postgresql(postgresqlSchema.parse({ host: pg.sockDir, port: pg.port, user: 'postgres', bin_dir: PG_BIN, config_paths: [conf] }))],
      path.join(ctx.tmp, 'state-pg'),
    );
    rt.compressionLevel = 6;
    const target = path.join(ctx.tmp, 'sets-pg');
    const dump = path.join(ctx.tmp, 'pg_dumpall.sql.gz');
    let id = '';
    let setBytes = 0;
    const b = await alternate(
      backupContender(rt, target, (r) => {
        id = r.id;
        setBytes = r.manifest.parts.reduce((s, p) => s + p.bytes, 0);
      }),
      { setup: () => rmrf(dump), run: () => shell(`${PG_BIN}/pg_dumpall ${sock} | gzip > ${q(dump)}`, ctx.tmp) },
      PG_RUNS,
    );
    timeRow(`7a. PostgreSQL backup, ${fmtBytes(dbBytes)} database (pgbench -s ${PG_SCALE}) vs pg_dumpall | gzip`, b.a, b.b, 1.0, '≤ 1.00');
    notes.push(`7a. output: lsbackup set ${fmtBytes(setBytes)}, pg_dumpall.sql.gz ${fmtBytes((await fsp.stat(dump)).size)}; lsbackup CPU is the agent process only (pg_dump runs as a child and is not counted), so no CPU column`);
    // A checkpoint after the drop: the previous run's dirty buffers and WAL are written before the
    // clock starts, not by the server in the middle of the next contender's run.
    const dropBench = async () => {
      await pg.sql('postgres', 'DROP DATABASE IF EXISTS bench WITH (FORCE)');
      await pg.sql('postgres', 'CHECKPOINT');
    };
    const r = await alternate(
      {
        setup: dropBench,
        run: () =>
          inProcess(async () => {
            const { results } = await restoreLocal(rt, target, id);
            const bad = results.filter((x) => x.status !== 'ok');
            if (bad.length) throw new Error(`pg restore failed: ${bad.map((x) => x.reason).join('; ')}`);
          }),
      },
      { setup: dropBench, run: () => shell(`gunzip -c ${q(dump)} | ${PG_BIN}/psql -X -q ${sock} -d postgres > /dev/null 2>&1`, ctx.tmp) },
      PG_RUNS,
    );
    const rows7 = Number(await pg.sql('bench', 'SELECT count(*) FROM pgbench_accounts'));
    if (rows7 !== PG_SCALE * 100_000) throw new Error(`after the restores pgbench_accounts has ${rows7} rows, expected ${PG_SCALE * 100_000}`);
    timeRow(`7b. PostgreSQL restore of that database (dropped first) vs gunzip | psql`, r.a, r.b, 1.0, '≤ 1.00');
    notes.push(
      "7b. lsbackup's restore also replays the globals (roles) and drops and recreates the postgres database from its own dump, which the psql baseline leaves alone; pg_restore of the big database is most of its time",
    );
    await rmrf(target);
    await rmrf(dump);
  } finally {
    await pg.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

function table(): string {
  const head = ['what', 'lsbackup', 'baseline', 'ratio', 'target', 'holds'];
  const body = rows.map((r) => [r.what, r.ours, r.base, r.ratio.toFixed(2), r.target, r.holds === undefined ? '—' : r.holds ? 'yes' : 'NO']);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...body.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

function results(m: Machine, loadBefore: number[], loadAfter: number[], totalMs: number, failures: string[], kept: number): string {
  return `# lsbackup bench results

Produced by \`npm run bench\` (bench/run.ts); do not edit by hand.

- Scale: **LSBACKUP_BENCH_SCALE=${scale}** (${scale === 1 ? 'the full bench' : 'a reduced run'}): file sets of ${fmtBytes(SET_BYTES)}, RSS set of ${fmtBytes(BIG_BYTES)}, ${fmtBytes(NODE_BYTES)} per fan-out node, pgbench scale ${PG_SCALE}
- Runs: median of ${RUNS} timed runs per contender (${PG_RUNS} for PostgreSQL), contenders alternated run by run, \`sync\` before every timed run, page cache warm (the data fits in RAM)
- Ratio: lsbackup ÷ baseline (time; for row 6, peak RSS ÷ RSS of the fresh agent). Throughput targets are given as the equivalent time ratio.
- Machine: ${m.cpu}, ${m.cores} cores, ${fmtBytes(m.ramBytes)} RAM, ${m.os}, Node ${m.node}
- Disk: ${fmtBytes(m.diskFreeBytes)} free on the file system of ${m.diskPath}
- Tools: ${m.tools}
- Date: ${m.date}; bench took ${fmtMs(totalMs)}
- Items run: ${[...ONLY].join(', ')}${kept ? '; rows marked [from the run of ...] are kept from an earlier run, on the machine and scale of that run' : ''}
- Load average (1/5/15 min) at start ${loadBefore.map((x) => x.toFixed(2)).join(' / ')}, at end ${loadAfter.map((x) => x.toFixed(2)).join(' / ')}${loadBefore[0]! > m.cores / 2 ? ' — the machine was busy with other work; times are noisy, CPU times are steadier' : ''}

${table()}
${failures.length ? `\nFailed items:\n\n${failures.map((f) => `- ${f}`).join('\n')}\n` : ''}
## Details

${notes.map((n) => `- ${n}`).join('\n')}
`;
}

async function main(): Promise<void> {
  const started = Date.now();
  const loadBefore = os.loadavg();
  // Everything goes below one directory, the temp dirs of DemoCluster and PgCluster too (they
  // follow TMPDIR), so one rm cleans up and no other tool's clean-up of /tmp/lsb* hits the bench.
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'issue7-bench-'));
  await fsp.chmod(tmp, 0o755); // the postgres OS user must reach its data directory below
  process.env.TMPDIR = tmp;
  const m = await machine(tmp);
  log(`scale ${scale}, ${RUNS} runs, items ${[...ONLY].join(',')}, data in ${tmp}`);
  const ctx: Ctx = { tmp };
  const failures: string[] = [];
  const kit: BenchKit = { tmp, scale, log, timeRow, addRow: (r) => rows.push(r), note: (n) => notes.push(n), rounds: (cs) => rounds(cs), shell, inProcess, rmrf, startCluster, agentEnv: agentUnitEnv };
  const scaled = new ScaleBench(kit);
  const items: [number, (c: Ctx) => Promise<void>][] = [
    [1, item1],
    [2, item2],
    [3, item3],
    [4, item4],
    [5, item5],
    [6, item6],
    [7, item7],
    // 10 and 12 use item 8's cluster and its last set; 9 comes after them.
    [8, () => scaled.item8()],
    [10, () => scaled.item10()],
    [12, () => scaled.item12()],
    [9, () => scaled.item9()],
    [11, async () => scaleAgents(RUNS, log).then((r) => void (rows.push(...r.rows), notes.push(...r.notes)))],
    [13, () => incremental(kit, RUNS)],
    [14, () => encryptionCost(kit)],
    [15, () => pruneCost(kit, RUNS)],
  ];
  try {
    for (const [n, fn] of items) {
      if (!ONLY.has(n)) continue;
      try {
        await fn(ctx);
      } catch (err) {
        const msg = `item ${n}: ${(err as Error).stack ?? String(err)}`;
        failures.push(msg.split('\n').slice(0, 3).join(' '));
        log(msg);
      }
    }
  } finally {
    await scaled.close();
    if (!process.env.LSBACKUP_BENCH_KEEP) await rmrf(tmp);
  }
  const earlier = await earlierResults(OUT, new Set(items.map(([n]) => n).filter((n) => ONLY.has(n))));
  rows.splice(0, rows.length, ...byItem([...rows, ...earlier.rows], (r) => r.what));
  notes.splice(0, notes.length, ...byItem([...notes, ...earlier.notes], (n) => n));
  const text = results(m, loadBefore, os.loadavg(), Date.now() - started, failures, earlier.rows.length);
  await fsp.writeFile(OUT, text);
  process.stdout.write(`\n${table()}\n\nwritten to ${OUT}\n`);
  if (failures.length) process.exitCode = 1;
}

await main();
