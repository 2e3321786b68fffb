/**
 * A one-node demo cluster (coordinator and one agent processes) whose only component is a tree of
 * files, and the CLI run against it as the backup timer runs it: the clusters of items 8-10, 12
 * and 13.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DemoCluster, bin } from '../demo/cluster.js';
import { LongestLine } from './longest-line.js';
import { procKiB, q } from './measure.js';
import type { BenchKit } from './scale-files.js';

export interface TreeCluster {
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

/** The CLI run as the backup timer runs it: stdout and stderr are pipes, not a terminal, no --json. */
export async function cliOk(c: DemoCluster, args: string[], what: string): Promise<{ stdout: string; stderr: string }> {
  const r = await c.cli(args);
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}: ${(r.stderr + r.stdout).slice(-1500)}`);
  return r;
}

export const lastLine = (s: string) => s.trim().split('\n').at(-1) ?? '';

/**
 * A one-node cluster whose only component, haproxy, is the tree; its processes' log lines are
 * watched; `coordinatorConfig` adds keys to the coordinator's config. With LSBACKUP_BENCH_CPU_PROF=<dir> the agent and coordinator run under
 * `node --cpu-prof` (Node refuses it in NODE_OPTIONS) and write their profiles there on exit.
 */
export async function treeCluster(kit: Pick<BenchKit, 'agentEnv' | 'startCluster'>, tree: string, coordinatorConfig: Record<string, unknown> = {}): Promise<TreeCluster> {
  const profDir = process.env.LSBACKUP_BENCH_CPU_PROF;
  const wrap = profDir ? ['bash', '-c', `exec "$0" --cpu-prof --cpu-prof-dir=${q(path.resolve(profDir))} "$@"`] : undefined;
  const c = await DemoCluster.create({
    nodes: 1,
    groups: [['haproxy']],
    agentEnv: await kit.agentEnv(),
    // No haproxy.cfg in the tree: restore has no config to check.
    agentConfig: { components: { haproxy: { paths: [tree], config_file: path.join(tree, 'haproxy.cfg') } } },
    nodeOverrides: [wrap ? { wrap } : undefined],
  });
  if (Object.keys(coordinatorConfig).length) {
    const conf = YAML.parse(await fsp.readFile(c.coordinatorConfigFile, 'utf8')) as Record<string, unknown>;
    await fsp.writeFile(c.coordinatorConfigFile, YAML.stringify({ ...conf, ...coordinatorConfig }));
  }
  if (wrap) {
    await c.startAgent(c.nodes[0]!);
    const priv = c as unknown as { startDaemon(file: string, config: string, label: string, wrap: string[]): Promise<DemoCluster['coordinator']> };
    c.coordinator = await priv.startDaemon(bin.coordinator, c.coordinatorConfigFile, 'coordinator', wrap);
  } else {
    await kit.startCluster(c);
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
  return tc;
}
