import path from 'node:path';
import type { Command } from 'commander';
import { absTarget, collect, followStream, print } from '../command-support.js';
import { partsTable } from '../output.js';

interface BackupOptions {
  buildDir: string;
  target: string;
  component: string[];
  node: string[];
  force?: boolean;
  rehash?: boolean;
}

export function registerBackup(program: Command): void {
  program
    .command('backup')
    .description('back up the cluster described by a build directory into a target')
    .requiredOption('-b, --build-dir <dir>', 'build directory with the Ansible inventory')
    .requiredOption('-t, --target <path>', 'shared backup location (same path on every node)')
    .option('--component <name>', 'only this component (repeat or comma-separate)', collect, [])
    .option('--node <host>', 'only this node (repeat or comma-separate)', collect, [])
    .option('--force', 'back up even when the target looks too small')
    .option('--rehash', 'read every file, even those unchanged since the last set')
    .action(async (o: BackupOptions, cmd: Command) => {
      const request = { buildDir: path.resolve(o.buildDir), target: absTarget(o.target), components: o.component, nodes: o.node, force: Boolean(o.force), rehash: Boolean(o.rehash) };
      const s = await followStream(cmd, (c) => c.Backup(request) as never);
      print(cmd, s, () =>
        [
          partsTable(s.parts),
          ...(s.notCovered.length ? [`not covered by lsbackup: ${s.notCovered.join('; ')}`] : []),
          ...s.reasons.map((r) => `problem: ${r}`),
          `backup ${s.backupId} ${s.status}`,
          s.backupId,
        ].join('\n'),
      );
      process.exitCode = s.status === 'complete' ? 0 : 1;
    });
}
