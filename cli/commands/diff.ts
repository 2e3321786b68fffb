import type { Command } from 'commander';
import { fetchFiles, fetchManifest, inputError, print } from '../command-support.js';
import { diffIndexes, indexSet } from '../diff.js';
import { identityHelp, readIdentityOption } from '../identity.js';

export function registerDiff(program: Command): void {
  program
    .command('diff')
    .description('what changed between two backup sets, by component')
    .argument('<id1>')
    .argument('<id2>')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--identity <file>', identityHelp)
    .action(async (id1: string, id2: string, o: { target: string; identity?: string }, cmd: Command) => {
      const identity = await readIdentityOption(o.identity);
      const [a, b] = await Promise.all([fetchManifest(cmd, o.target, id1), fetchManifest(cmd, o.target, id2)]);
      if (!a.manifest || !b.manifest) throw inputError('incomplete', `backup ${!a.manifest ? id1 : id2} is incomplete and has nothing to compare`);
      // Each set's index holds one line per path: a diff compares them all (entries stream in, the index is what stays).
      const [ia, ib] = await Promise.all([indexSet(a.manifest, fetchFiles(cmd, o.target, id1, { identity })), indexSet(b.manifest, fetchFiles(cmd, o.target, id2, { identity }))]);
      const d = diffIndexes(ia, ib);
      print(cmd, d, () =>
        d.length ? d.map((x) => `${x.change.padEnd(8)} ${x.node}/${x.component} ${x.path}`).join('\n') : `no differences between ${id1} and ${id2}`,
      );
    });
}
