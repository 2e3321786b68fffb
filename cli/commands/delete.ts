import type { Command } from 'commander';
import { pruneSets } from './prune.js';

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .description('remove backup sets by id (incomplete ones included), and their Elasticsearch snapshots')
    .argument('<id...>', 'backup ids')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .action(async (ids: string[], o: { target: string }, cmd: Command) => {
      await pruneSets(cmd, o.target, { removeIds: ids }, (r) => `removed ${r.removed.join(', ') || 'nothing'}`);
    });
}
