import type { Command } from 'commander';
import { humanBytes } from '../../common/units.js';
import { fetchManifest, print } from '../command-support.js';
import { partsTable } from '../output.js';

export function registerShow(program: Command): void {
  program
    .command('show')
    .description('describe one backup set')
    .argument('<id>', 'backup id')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .action(async (id: string, o: { target: string }, cmd: Command) => {
      const { set, manifest } = await fetchManifest(cmd, o.target, id);
      print(cmd, manifest ?? set, () => {
        const lines = [
          `backup ${set.backupId}: ${set.status}`,
          `started ${set.startedAt}${set.finishedAt ? `, finished ${set.finishedAt}` : ''}`,
          `${set.files} files, ${humanBytes(Number(set.bytes))}`,
        ];
        if (manifest) {
          lines.push(partsTable(manifest.parts.map((p) => ({ ...p, artifacts: [], entries: [], external: [] }))));
          if (manifest.notCovered.length) lines.push(`not covered: ${manifest.notCovered.join('; ')}`);
        }
        lines.push(...set.reasons.map((r) => `problem: ${r}`));
        return lines.join('\n');
      });
    });
}
