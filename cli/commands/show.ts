import type { Command } from 'commander';
import { humanBytes } from '../../common/units.js';
import { fetchFiles, fetchManifest, globals, print } from '../command-support.js';
import { fileLine } from '../output.js';
import { partsTable } from '../output.js';
import { identityHelp, readIdentityOption } from '../identity.js';

export function registerShow(program: Command): void {
  program
    .command('show')
    .description('describe one backup set')
    .argument('<id>', 'backup id')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--files', 'list every file, directory and symlink the set holds, streamed (one line each; JSON lines with --json)')
    .option('--node <name>', 'with --files: only this node')
    .option('--component <name>', 'with --files: only this component')
    .option('--identity <file>', `with --files: ${identityHelp}`)
    .action(async (id: string, o: { target: string; files?: boolean; node?: string; component?: string; identity?: string }, cmd: Command) => {
      if (o.files) {
        const json = Boolean(globals(cmd).json);
        const identity = await readIdentityOption(o.identity);
        for await (const e of fetchFiles(cmd, o.target, id, { node: o.node, component: o.component, identity })) {
          if (!process.stdout.write((json ? JSON.stringify(e) : fileLine(e)) + '\n')) await new Promise((r) => process.stdout.once('drain', r));
        }
        return;
      }
      const { set, manifest } = await fetchManifest(cmd, o.target, id);
      print(cmd, manifest ?? set, () => {
        const lines = [
          `backup ${set.backupId}: ${set.status}`,
          `started ${set.startedAt}${set.finishedAt ? `, finished ${set.finishedAt}` : ''}`,
          `${set.files} files, ${humanBytes(Number(set.bytes))}${set.format === 'lsbackup-set/3' || set.format === 'lsbackup-set/4' ? `, of which ${humanBytes(Number(set.newBytes))} new in the target (the rest is shared with other sets)` : ''}`,
        ];
        if (manifest) {
          lines.push(manifest.encryption ? `encrypted to ${manifest.encryption.recipients.join(', ')} (key ${manifest.encryption.keyId}); file names, contents and meta are read with the identity` : 'unencrypted: anyone who can read the target can read this set');
          lines.push(`format ${manifest.format}; ${manifest.parts.reduce((n, p) => n + p.entryCount, 0)} entries (files, directories, symlinks) in ${manifest.parts.length} parts: \`lsbackup show ${set.backupId} --files\` lists them`);
          lines.push(partsTable(manifest.parts.map((p) => ({ ...p, artifacts: [], external: [], record: null }))));
          if (manifest.notCovered.length) lines.push(`not covered: ${manifest.notCovered.join('; ')}`);
        }
        lines.push(...set.reasons.map((r) => `problem: ${r}`));
        return lines.join('\n');
      });
    });
}
