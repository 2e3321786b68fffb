import type { Command } from 'commander';
import type { CancelReply__Output as CancelReply } from '../../proto/generated/lsbackup/v1/CancelReply.js';
import { absTarget, print, unary } from '../command-support.js';

interface CancelOptions {
  target: string;
  node?: string;
}

/** Asks the restores running on a target to stop at their next safe point; each says what it left when it ends. */
export function registerCancel(program: Command): void {
  program
    .command('cancel')
    .description('stop the restores running on a target at their next safe point (each component keeps its old state or gets all of the new)')
    .argument('[id]', 'only the restore from this backup id')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--node <host>', 'only the restore of this node')
    .action(async (id: string | undefined, o: CancelOptions, cmd: Command) => {
      const r = await unary<CancelReply>(cmd, (c, cb) => c.Cancel({ target: absTarget(o.target), backupId: id ?? '', node: o.node ?? '' }, cb));
      print(cmd, r, () => (r.cancelled.length ? r.cancelled.map((w) => `asked to stop: ${w}`).join('\n') : `no restore is running on ${o.target}${id ? ` from ${id}` : ''}${o.node ? ` for ${o.node}` : ''}`));
      process.exitCode = r.cancelled.length ? 0 : 1;
    });
}
