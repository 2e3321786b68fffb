import type { Command } from 'commander';
import { humanBytes } from '../../common/units.js';
import type { SetInfo__Output as SetInfo } from '../../proto/generated/lsbackup/v1/SetInfo.js';
import { absTarget, print, unary } from '../command-support.js';
import { table } from '../output.js';

function setRow(s: SetInfo): string[] {
  return [s.backupId, s.status, humanBytes(Number(s.bytes)), s.status === 'incomplete' || s.status === 'corrupt' ? '' : humanBytes(Number(s.newBytes)), String(s.files), s.nodes.join(','), s.components.join(',')];
}

export function registerList(program: Command): void {
  program
    .command('list')
    .description('list the backup sets in a target')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .action(async (o: { target: string }, cmd: Command) => {
      const r = await unary<{ sets: SetInfo[] }>(cmd, (c, cb) => c.List({ target: absTarget(o.target) }, cb));
      print(cmd, r.sets, () =>
        r.sets.length ? table(r.sets.map(setRow), ['ID', 'STATUS', 'SIZE', 'NEW', 'FILES', 'NODES', 'COMPONENTS']) : `no backups in ${o.target}`,
      );
    });
}
