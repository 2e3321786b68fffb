import path from 'node:path';
import type { Command } from 'commander';
import { humanBytes } from '../../common/units.js';
import type { AgentStatus__Output as AgentStatus } from '../../proto/generated/lsbackup/v1/AgentStatus.js';
import { absTarget, print, unary } from '../command-support.js';
import { table } from '../output.js';

function agentRow(a: AgentStatus, withFreeSpace: boolean): string[] {
  return [
    a.node,
    a.address,
    a.reachable ? 'yes' : `no: ${a.error}`,
    a.info?.version ?? '',
    (a.info?.components ?? a.expectedComponents).join(','),
    a.info && withFreeSpace ? humanBytes(Number(a.info.freeBytes)) : '',
  ];
}

/** What each agent found on its node, for the components the inventory gives it. */
function detectionLines(a: AgentStatus): string[] {
  return (a.info?.detections ?? [])
    .filter((d) => a.expectedComponents.some((e) => e.replace(/\?$/, '') === d.component) || d.configured)
    .map((d) => `${a.node} ${d.component}: ${d.present ? '' : 'NOT FOUND: '}${d.detail}`);
}

export function registerAgents(program: Command): void {
  program
    .command('agents')
    .description('ask every agent of the inventory whether it is reachable and what it serves')
    .requiredOption('-b, --build-dir <dir>', 'build directory with the Ansible inventory')
    .option('-t, --target <path>', 'report the free space each agent sees here')
    .action(async (o: { buildDir: string; target?: string }, cmd: Command) => {
      const request = { buildDir: path.resolve(o.buildDir), target: o.target ? absTarget(o.target) : '' };
      const r = await unary<{ agents: AgentStatus[]; notCovered: string[] }>(cmd, (c, cb) => c.Agents(request, cb));
      print(cmd, r, () =>
        [
          table(
            r.agents.map((a) => agentRow(a, Boolean(o.target))),
            ['NODE', 'ADDRESS', 'REACHABLE', 'VERSION', 'COMPONENTS', 'FREE AT TARGET'],
          ),
          ...r.agents.flatMap(detectionLines),
          ...(r.notCovered.length ? [`not covered by lsbackup: ${r.notCovered.join('; ')}`] : []),
        ].join('\n'),
      );
      process.exitCode = r.agents.every((a) => a.reachable) ? 0 : 1;
    });
}
