/**
 * Bench items 8, 9, 10 and 12 (issue 13, scale): trees of many small files. Item 8 backs up a
 * million files of 0-4 KiB through the CLI, coordinator and agent processes; item 9 backs up and
 * restores 40,000 in this process and through the CLI; item 10 verifies the million-file set;
 * item 12 reports the longest line the CLI, agent and coordinator wrote during item 8's backups.
 * Every count follows LSBACKUP_BENCH_SCALE (0.01: 10,000 and 400 files).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { filesComponent } from '../agent/components/files.js';
import { backupNode } from '../agent/runner.js';
import { commitSet } from '../common/commit.js';
import { mkdirPrivate } from '../common/fsutil.js';
import { FORMAT_2, newSetId, setDir } from '../common/manifest.js';
import YAML from 'yaml';
import { DemoCluster, bin } from '../demo/cluster.js';
import { partsFromAnswers, restoreLocal, runtimeOf } from '../test/helpers/harness.js';
import type { DataSet } from './data.js';
import { KiB, MiB } from './data.js';
import { cpuOf, fmtBytes, fmtMs, procKiB, q, sh, timeIt, type BenchRow } from './measure.js';

export interface Timed {
  ms: number;
  cpu: number;
}
export interface Contender {
  setup?: () => Promise<unknown>;
  run: () => Promise<Timed>;
}
/** What run.ts lends the items: its table, its timing helpers and how it starts a cluster. */
export interface BenchKit {
  tmp: string;
  scale: number;
  log(line: string): void;
  timeRow(what: string, ours: number[], base: number[], limit: number | undefined, target: string, extra?: { oursCpu?: number[]; baseCpu?: number[]; bytes?: number }): BenchRow;
  addRow(row: BenchRow): void;
  note(line: string): void;
  rounds(cs: Contender[]): Promise<{ ms: number[]; cpu: number[] }[]>;
  shell(script: string, tmp: string): Promise<Timed>;
  inProcess(fn: () => Promise<unknown>): Promise<Timed>;
  rmrf(p: string): Promise<void>;
  startCluster(c: DemoCluster): Promise<void>;
  agentEnv(): Promise<Record<string, string>>;
}

/**
 * One pass of Python: a seeded corpus of mixed text (JSON log lines, config lines, prose, a few
 * base64 blobs that barely compress), then `count` files of 0-4096 bytes cut from it at random
 * offsets, 1,000 per directory. Node's fs promises cost ~10x more per small file than this.
 */
const GENERATOR = String.raw`
import base64, json, os, random, sys
root, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
letters = 'abcdefghijklmnopqrstuvwxyz'
words = [''.join(r.choice(letters) for _ in range(r.randint(2, 10))) for _ in range(3000)]
def pick(n): return ' '.join(r.choice(words) for _ in range(n))
parts, size = [], 0
while size < 8 << 20:
    k = r.random()
    if k < 0.45:
        line = json.dumps({'ts': '2026-11-%02dT%02d:%02d:%02d.%03dZ' % (r.randint(1, 30), r.randint(0, 23), r.randint(0, 59), r.randint(0, 59), r.randint(0, 999)),
                           'level': r.choice(['info', 'info', 'info', 'debug', 'warn', 'error']), 'svc': 'svc-%d' % r.randint(0, 40),
                           'msg': pick(r.randint(3, 14)), 'request_id': '%016x' % r.getrandbits(64), 'latency_ms': round(r.random() * 2500, 2)})
    elif k < 0.75:
        line = '%s.%s = %s' % (r.choice(words), r.choice(words), r.choice([str(r.randint(0, 65535)), r.choice(words), 'true', 'false', '/var/lib/' + r.choice(words)]))
    elif k < 0.95:
        line = pick(r.randint(5, 20))
    else:
        line = base64.b64encode(r.randbytes(57)).decode()
    b = (line + '\n').encode()
    parts.append(b)
    size += len(b)
corpus = b''.join(parts)
span = len(corpus) - 4097
exts = ('json', 'log', 'conf')
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
total = 0
d = root
for i in range(count):
    if i % 1000 == 0:
        d = os.path.join(root, 'd%04d' % (i // 1000))
        os.makedirs(d, exist_ok=True)
    n = r.randint(0, 4096)
    off = r.randint(0, span)
    fd = os.open(os.path.join(d, 'f%07d.%s' % (i, exts[i % 3])), flags, 0o644)
    os.write(fd, corpus[off:off + n])
    os.close(fd)
    total += n
print(count, total)
`;

export async function makeSmallFiles(root: string, count: number, seed: number): Promise<DataSet> {
  await fsp.mkdir(root, { recursive: true });
  const script = path.join(path.dirname(root), 'make-small-files.py');
  await fsp.writeFile(script, GENERATOR);
  const [files, bytes] = (await sh(`python3 ${q(script)} ${q(root)} ${count} ${seed}`)).trim().split(' ').map(Number);
  return { root, files: files!, bytes: bytes!, largest: 4096 };
}

/** The longest line (in bytes) seen on a stream, fed in chunks that may split lines anywhere. */
export class LongestLine {
  longest = 0;
  lines = 0;
  /** The first 120 characters of the longest line, to say what it was. */
  sample = '';
  private partial = '';

  feed(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split('\n');
    this.partial = parts.pop()!;
    for (const l of parts) this.take(l);
  }

  end(): this {
    if (this.partial) this.take(this.partial);
    this.partial = '';
    return this;
  }

  private take(line: string): void {
    this.lines++;
    const n = Buffer.byteLength(line);
    if (n > this.longest) {
      this.longest = n;
      this.sample = line.slice(0, 120);
    }
  }
}

interface TreeCluster {
  c: DemoCluster;
  /** Command prefix the daemons run under (the profiler), if any. */
  wrap: string[];
  agentPid: number;
  coordinatorPid: number;
  /** VmHWM of each fresh process, before its first backup. */
  agentIdle: number;
  coordinatorIdle: number;
  agentLog: LongestLine;
  coordinatorLog: LongestLine;
}

const fmtCount = (n: number) => n.toLocaleString('en-US');
const FOUR_KIB = 4 * KiB;
const RSS_LIMIT = 300 * MiB;

/** The CLI run as the backup timer runs it: stdout and stderr are pipes, not a terminal, no --json. */
async function cliOk(c: DemoCluster, args: string[], what: string): Promise<{ stdout: string; stderr: string }> {
  const r = await c.cli(args);
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${(r.stderr + r.stdout).slice(-1500)}`);
  return r;
}

const lastLine = (s: string) => s.trim().split('\n').at(-1) ?? '';

export class ScaleBench {
  readonly millionCount: number;
  readonly smallCount: number;
  private million?: Promise<DataSet>;
  private small?: Promise<DataSet>;
  private millionCluster?: Promise<TreeCluster>;
  private millionRuns?: Promise<{ target: string; id: string; cli: LongestLine }>;
  private readonly clusters: TreeCluster[] = [];

  constructor(private readonly kit: BenchKit) {
    this.millionCount = Math.max(1000, Math.round(1_000_000 * kit.scale));
    this.smallCount = Math.max(100, Math.round(40_000 * kit.scale));
  }

  /** Each tree is made once per process and shared by the items that use it. */
  private tree(name: string, count: number, seed: number): Promise<DataSet> {
    return (async () => {
      const st = await fsp.statfs(this.kit.tmp);
      const free = Number(st.bavail) * Number(st.bsize);
      // Files average 2 KiB of content in 4 KiB blocks; a set and a tar.gz of it come on top.
      const need = count * 8 * KiB;
      if (free < need) throw new Error(`${fmtCount(count)} files need about ${fmtBytes(need)} free in ${this.kit.tmp}, there are ${fmtBytes(free)}`);
      if (Number(st.ffree) < count * 1.2) throw new Error(`${fmtCount(count)} files need as many inodes in ${this.kit.tmp}, ${fmtCount(Number(st.ffree))} are free`);
      this.kit.log(`generating ${fmtCount(count)} files of 0-4 KiB (${name})`);
      const started = performance.now();
      const d = await makeSmallFiles(path.join(this.kit.tmp, name, 'data'), count, seed);
      this.kit.log(`generated ${fmtCount(d.files)} files, ${fmtBytes(d.bytes)}, in ${fmtMs(performance.now() - started)}`);
      return d;
    })();
  }

  private millionTree(): Promise<DataSet> {
    return (this.million ??= this.tree('src-million', this.millionCount, 13));
  }

  private smallTree(): Promise<DataSet> {
    return (this.small ??= this.tree('src-small', this.smallCount, 9));
  }

  /**
   * A one-node cluster whose only component, haproxy, is the tree; its processes' log lines are
   * watched. With LSBACKUP_BENCH_CPU_PROF=<dir> the agent and coordinator run under
   * `node --cpu-prof` (Node refuses it in NODE_OPTIONS) and write their profiles there on exit.
   */
  private async treeCluster(tree: string): Promise<TreeCluster> {
    const profDir = process.env.LSBACKUP_BENCH_CPU_PROF;
    const wrap = profDir ? ['bash', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${q(path.resolve(profDir))} "$@"`] : undefined;
    const c = await DemoCluster.create({
      nodes: 1,
      groups: [['haproxy']],
      agentEnv: await this.kit.agentEnv(),
      // No haproxy.cfg in the tree: restore has no config to check.
      agentConfig: { components: { haproxy: { paths: [tree], config_file: path.join(tree, 'haproxy.cfg') } } },
      nodeOverrides: [wrap ? { wrap } : undefined],
    });
    if (wrap) {
      await c.startAgent(c.nodes[0]!);
      const priv = c as unknown as { startDaemon(file: string, config: string, label: string, wrap: string[]): Promise<DemoCluster['coordinator']> };
      c.coordinator = await priv.startDaemon(bin.coordinator, c.coordinatorConfigFile, 'coordinator', wrap);
    } else {
      await this.kit.startCluster(c);
    }
    const agent = c.nodes[0]!.process!;
    const coordinator = c.coordinator!;
    const agentLog = new LongestLine();
    const coordinatorLog = new LongestLine();
    for (const s of [agent.stdout!, agent.stderr!]) s.on('data', (d: Buffer) => agentLog.feed(d));
    for (const s of [coordinator.stdout!, coordinator.stderr!]) s.on('data', (d: Buffer) => coordinatorLog.feed(d));
    const tc: TreeCluster = {
      c,
      wrap: wrap ?? [],
      agentPid: agent.pid!,
      coordinatorPid: coordinator.pid!,
      agentIdle: await procKiB(agent.pid!, 'VmHWM'),
      coordinatorIdle: await procKiB(coordinator.pid!, 'VmHWM'),
      agentLog,
      coordinatorLog,
    };
    this.clusters.push(tc);
    return tc;
  }

  /** Restarts the coordinator with `changes` in its config file, its log still watched. */
  private async restartCoordinator(tc: TreeCluster, changes: Record<string, unknown>): Promise<void> {
    const old = tc.c.coordinator!;
    await new Promise((r) => {
      old.once('exit', r);
      old.kill('SIGTERM');
    });
    const file = tc.c.coordinatorConfigFile;
    await fsp.writeFile(file, YAML.stringify({ ...(YAML.parse(await fsp.readFile(file, 'utf8')) as object), ...changes }));
    const priv = tc.c as unknown as { startDaemon(file: string, config: string, label: string, wrap: string[]): Promise<DemoCluster['coordinator']> };
    const coordinator = (tc.c.coordinator = await priv.startDaemon(bin.coordinator, file, 'coordinator', tc.wrap))!;
    for (const s of [coordinator.stdout!, coordinator.stderr!]) s.on('data', (d: Buffer) => tc.coordinatorLog.feed(d));
    tc.coordinatorPid = coordinator.pid!;
    tc.coordinatorIdle = await procKiB(coordinator.pid!, 'VmHWM');
  }

  /**
   * One untimed backup with the coordinator's defaults (also the warm-up): does a million-file
   * component complete as installed? If not, the coordinator gets agent_timeout_s 600 (the Info
   * call, which sizes the tree, is what ran out at 10 s here) so the time and memory can be measured.
   */
  private async firstMillionBackup(tc: TreeCluster, target: string): Promise<string | undefined> {
    const r = await tc.c.cli(['backup', '-b', tc.c.buildDir, '-t', target]);
    await this.kit.rmrf(target);
    if (r.code === 0 && / complete$/m.test(r.stdout)) return undefined;
    const problem = /^problem: (.*)$/m.exec(r.stdout)?.[1] ?? lastLine(r.stderr + r.stdout);
    this.kit.log(`8. the backup with the coordinator's defaults failed (${problem}); again with agent_timeout_s 600`);
    await this.restartCoordinator(tc, { agent_timeout_s: 600 });
    return problem;
  }

  private millionClusterOnce(): Promise<TreeCluster> {
    return (this.millionCluster ??= this.millionTree().then((d) => this.treeCluster(d.root)));
  }

  /** A CLI backup of the tree's cluster, timed, with the agent's and coordinator's CPU and peak RSS of that run. */
  private cliBackup(tc: TreeCluster, target: string, seen: { peaks: { agent: number[]; coordinator: number[] }; cli?: LongestLine; id: string }): Contender {
    const pids = [tc.agentPid, tc.coordinatorPid];
    return {
      setup: async () => {
        await this.kit.rmrf(target);
        // Writing 5 to clear_refs resets VmHWM to the current RSS: each run's peak is its own.
        for (const pid of pids) await fsp.writeFile(`/proc/${pid}/clear_refs`, '5');
      },
      run: async () => {
        const c0 = await cpuOf(pids);
        let out = { stdout: '', stderr: '' };
        const ms = await timeIt(async () => (out = await cliOk(tc.c, ['backup', '-b', tc.c.buildDir, '-t', target], 'lsbackup backup')));
        const cpu = (await cpuOf(pids)) - c0;
        seen.peaks.agent.push(await procKiB(tc.agentPid, 'VmHWM'));
        seen.peaks.coordinator.push(await procKiB(tc.coordinatorPid, 'VmHWM'));
        seen.cli?.feed(out.stderr);
        seen.cli?.end();
        seen.id = lastLine(out.stdout);
        if (!/ complete$/m.test(out.stdout)) throw new Error(`backup not complete: ${out.stdout.slice(-1500)}`);
        return { ms, cpu };
      },
    };
  }

  private tarGz(data: DataSet, tgz: string): Contender {
    return {
      setup: () => this.kit.rmrf(tgz),
      run: () => this.kit.shell(`tar -czf ${q(tgz)} -C ${q(path.dirname(data.root))} ${q(path.basename(data.root))}`, this.kit.tmp),
    };
  }

  /** Item 8's timed rounds; item 12 reads the lines they wrote, item 10 verifies the last set. */
  private runMillion(): Promise<{ target: string; id: string; cli: LongestLine }> {
    return (this.millionRuns ??= (async () => {
      const data = await this.millionTree();
      const tc = await this.millionClusterOnce();
      const target = path.join(tc.c.root, 'sets');
      const tgz = path.join(this.kit.tmp, 'million.tar.gz');
      const seen = { peaks: { agent: [] as number[], coordinator: [] as number[] }, cli: new LongestLine(), id: '' };
      const asInstalled = await this.firstMillionBackup(tc, target);
      const [ours, tar] = await this.kit.rounds([this.cliBackup(tc, target, seen), this.tarGz(data, tgz)]);
      const tgzBytes = (await fsp.stat(tgz)).size;
      const setBytes = Number((await sh(`du -sb ${q(target)}`)).split('\t')[0]);
      await this.kit.rmrf(tgz);
      const what = `${fmtCount(data.files)} files of 0-4 KiB (${fmtBytes(data.bytes)} of text, one component, deflate 6)`;
      const how = asInstalled === undefined ? "the coordinator's defaults" : `agent_timeout_s 600; with the default 10 s it did not complete: ${asInstalled}`;
      const row = this.kit.timeRow(`8. CLI backup of ${what} (${how}) vs tar -czf`, ours!.ms, tar!.ms, 2.0, 'completes; ≤ 2.00', { oursCpu: ours!.cpu, baseCpu: tar!.cpu, bytes: data.bytes });
      if (asInstalled !== undefined) row.holds = false;
      this.kit.note(`8. lsbackup CPU is the agent's and the coordinator's (the CLI's is not counted); output: set ${fmtBytes(setBytes)}, tar.gz ${fmtBytes(tgzBytes)}`);
      this.rssRow('8b. agent', seen.peaks.agent, tc.agentIdle, what);
      this.rssRow('8c. coordinator', seen.peaks.coordinator, tc.coordinatorIdle, what);
      return { target, id: seen.id, cli: seen.cli };
    })());
  }

  private rssRow(who: string, peaks: number[], idle: number, what: string): void {
    const peak = Math.max(...peaks);
    this.kit.addRow({
      what: `${who} peak RSS (VmHWM, the highest of the runs) backing up ${what}, vs the fresh process`,
      ours: fmtBytes(peak),
      base: fmtBytes(idle),
      ratio: peak / idle,
      target: '< 300 MiB',
      holds: peak < RSS_LIMIT,
    });
    this.kit.note(`${who.split(' ')[0]} peaks per run ${peaks.map(fmtBytes).join(', ')}`);
  }

  async item8(): Promise<void> {
    await this.runMillion();
  }

  async item12(): Promise<void> {
    const { cli } = await this.runMillion();
    const tc = await this.millionClusterOnce();
    const streams: [string, string, LongestLine][] = [
      ['12a', "the CLI's stderr (not a terminal: JSON progress lines)", cli],
      ['12b', "the agent's log (stdout and stderr)", tc.agentLog.end()],
      ['12c', "the coordinator's log (stdout and stderr)", tc.coordinatorLog.end()],
    ];
    for (const [n, which, l] of streams) {
      this.kit.addRow({
        what: `${n}. longest line of ${which} during the ${fmtCount(this.millionCount)}-file backups (${fmtCount(l.lines)} lines)`,
        ours: `${fmtCount(l.longest)} B`,
        base: '4 KiB (limit)',
        ratio: l.longest / FOUR_KIB,
        target: '≤ 4 KiB',
        holds: l.longest <= FOUR_KIB,
      });
      this.kit.note(`${n}. the longest line began: ${JSON.stringify(l.sample)}`);
    }
  }

  async item10(): Promise<void> {
    const data = await this.millionTree();
    const { target, id } = await this.runMillion();
    const tc = await this.millionClusterOnce();
    const pids = [tc.agentPid, tc.coordinatorPid];
    const [ours, sums] = await this.kit.rounds([
      {
        run: async () => {
          const c0 = await cpuOf(pids);
          const ms = await timeIt(() => cliOk(tc.c, ['verify', id, '-t', target], 'lsbackup verify'));
          return { ms, cpu: (await cpuOf(pids)) - c0 };
        },
      },
      { run: () => this.kit.shell(`find ${q(data.root)} -type f -print0 | xargs -0 sha256sum > /dev/null`, this.kit.tmp) },
    ]);
    this.kit.timeRow(`10. lsbackup verify of the ${fmtCount(data.files)}-file set vs find | xargs sha256sum over the files`, ours!.ms, sums!.ms, 2.0, '≤ 2.00', {
      oursCpu: ours!.cpu,
      baseCpu: sums!.cpu,
      bytes: data.bytes,
    });
    this.kit.note("10. lsbackup CPU is the coordinator's and the agent's (verify runs in the coordinator); it hashes the tar.gz and the entries file, inflates the tar and hashes every file in it");
  }

  async item9(): Promise<void> {
    const data = await this.smallTree();
    const tgz = path.join(this.kit.tmp, 'small.tar.gz');
    const what = `${fmtCount(data.files)} files of 0-4 KiB (${fmtBytes(data.bytes)})`;
    await this.smallInProcess(data, tgz, what);
    await this.smallThroughCli(data, tgz, what);
    await this.kit.rmrf(tgz);
  }

  /**
   * Backup and restore in this process, as items 1-4 do, through the agent's runner and the
   * coordinator's commit: harness.backupLocal without its test-only step of reading every entry
   * back into memory, which no lsbackup command does.
   */
  private async smallInProcess(data: DataSet, tgz: string, what: string): Promise<void> {
    const stateDir = path.join(this.kit.tmp, 'state-small');
    await fsp.mkdir(stateDir, { recursive: true });
    const rt = runtimeOf([filesComponent('haproxy', [data.root])], stateDir);
    rt.compressionLevel = 6;
    const target = path.join(this.kit.tmp, 'sets-small');
    let id = '';
    const [ours, tar] = await this.kit.rounds([
      {
        setup: () => this.kit.rmrf(target),
        run: () =>
          this.kit.inProcess(async () => {
            id = await backupInProcess(rt, target);
          }),
      },
      this.tarGz(data, tgz),
    ]);
    this.kit.timeRow(`9a. back up ${what} in-process vs tar -czf`, ours!.ms, tar!.ms, 2.0, '≤ 2.00', { oursCpu: ours!.cpu, baseCpu: tar!.cpu, bytes: data.bytes });

    const wipe = async () => {
      await this.kit.rmrf(data.root);
      await this.kit.rmrf(path.join(stateDir, 'rollback'));
    };
    const [back, untar] = await this.kit.rounds([
      {
        setup: wipe,
        run: () =>
          this.kit.inProcess(async () => {
            const { results } = await restoreLocal(rt, target, id);
            const bad = results.filter((x) => x.status !== 'ok');
            if (bad.length) throw new Error(`restore failed: ${bad.map((x) => x.reason).join('; ')}`);
          }),
      },
      { setup: wipe, run: () => this.kit.shell(`tar -xzf ${q(tgz)} -C ${q(path.dirname(data.root))}`, this.kit.tmp) },
    ]);
    this.kit.timeRow(`9b. restore ${what} in-process into a wiped directory vs tar -xzf`, back!.ms, untar!.ms, 2.0, '≤ 2.00', { oursCpu: back!.cpu, baseCpu: untar!.cpu, bytes: data.bytes });
    await this.restoredMatches(data, tgz, () => restoreLocal(rt, target, id).then(() => undefined), wipe);
    await this.kit.rmrf(target);
    await this.kit.rmrf(path.join(stateDir, 'rollback'));
  }

  /** The same through the CLI, coordinator and agent processes: info rows. */
  private async smallThroughCli(data: DataSet, tgz: string, what: string): Promise<void> {
    const tc = await this.treeCluster(data.root);
    const target = path.join(tc.c.root, 'sets');
    const seen = { peaks: { agent: [] as number[], coordinator: [] as number[] }, id: '' };
    const [ours, tar] = await this.kit.rounds([this.cliBackup(tc, target, seen), this.tarGz(data, tgz)]);
    this.kit.timeRow(`9c. CLI backup of ${what} vs tar -czf`, ours!.ms, tar!.ms, undefined, 'info', { bytes: data.bytes });
    const wipe = () => this.kit.rmrf(data.root);
    const restore = async () => {
      await cliOk(tc.c, ['restore', seen.id, '-t', target, '--node', tc.c.nodes[0]!.name], 'lsbackup restore');
    };
    const [back, untar] = await this.kit.rounds([
      { setup: wipe, run: async () => ({ ms: await timeIt(restore), cpu: 0 }) },
      { setup: wipe, run: () => this.kit.shell(`tar -xzf ${q(tgz)} -C ${q(path.dirname(data.root))}`, this.kit.tmp) },
    ]);
    this.kit.timeRow(`9d. CLI restore of ${what} into a wiped directory vs tar -xzf`, back!.ms, untar!.ms, undefined, 'info', { bytes: data.bytes });
    await this.restoredMatches(data, tgz, restore, wipe);
  }

  /** A restore that puts back other bytes than were backed up would make its times meaningless: compare with tar's copy. */
  private async restoredMatches(data: DataSet, tgz: string, restore: () => Promise<void>, wipe: () => Promise<void>): Promise<void> {
    const ref = path.join(this.kit.tmp, 'small-reference');
    await this.kit.rmrf(ref);
    await fsp.mkdir(ref);
    await sh(`tar -xzf ${q(tgz)} -C ${q(ref)}`);
    await wipe();
    await restore();
    await sh(`diff -r ${q(path.join(ref, path.basename(data.root)))} ${q(data.root)}`);
    await this.kit.rmrf(ref);
  }

  /** Stops the clusters; the trees go with the bench's temp directory. */
  async close(): Promise<void> {
    for (const tc of this.clusters.splice(0)) {
      await tc.c.stop();
      await tc.c.remove();
    }
  }
}

/** backupLocal's steps (the agent's runner, then the commit from the part records), nothing more. */
async function backupInProcess(rt: ReturnType<typeof runtimeOf>, target: string): Promise<string> {
  const id = newSetId();
  const dir = setDir(target, id);
  await mkdirPrivate(dir);
  const startedAt = new Date().toISOString();
  const results = await backupNode(rt, { backupId: id, target, node: rt.node, components: [] }, () => undefined, new AbortController().signal);
  const manifest = await commitSet(dir, FORMAT_2, { id, startedAt, buildDir: '', nodes: { [rt.node]: { address: 'in-process' } }, notCovered: [] }, await partsFromAnswers(dir, results));
  if (manifest.status !== 'complete') throw new Error(`backup ${manifest.status}: ${manifest.reasons.join('; ')}`);
  return id;
}
