import type { Command } from 'commander';
import { absTarget, followStream, print } from '../command-support.js';

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('recompute the checksum of every file of a set and of every file inside its archives')
    .argument('<id>', 'backup id')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--quick', 'check the artifacts only, not the entries inside the archives')
    .action(async (id: string, o: { target: string; quick?: boolean }, cmd: Command) => {
      const s = await followStream(cmd, (c) => c.Verify({ target: absTarget(o.target), backupId: id, quick: Boolean(o.quick) }) as never);
      print(cmd, s, () =>
        s.status === 'ok'
          ? `backup ${id}: every file matches its manifest`
          : [`backup ${id}: ${s.reasons.length} bad file(s)`, ...s.reasons.map((r) => `  ${r}`)].join('\n'),
      );
      process.exitCode = s.status === 'ok' ? 0 : 1;
    });
}
