import type { Command } from 'commander';
import { pruneSets } from './prune.js';

export function registerDelete(program: Command): void {
  program
    .command('delete')
    .description('remove backup sets by id (incomplete ones included), and their Elasticsearch snapshots; then collect the content store')
    .argument('<id...>', 'backup ids')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--dry-run', 'say what would go (sets, snapshots, pieces of the store and their bytes), remove nothing')
    .action(async (ids: string[], o: { target: string; dryRun?: boolean }, cmd: Command) => {
      const dryRun = Boolean(o.dryRun);
      await pruneSets(cmd, o.target, { removeIds: ids, dryRun }, (r) =>
        // The store's line, when the target has a store, is the one reason that names no set.
        [`${dryRun ? 'would remove' : 'removed'} ${r.removed.join(', ') || 'nothing'}`, ...r.reasons.filter((line) => line.startsWith('store: '))].join('\n'),
      );
    });
}
