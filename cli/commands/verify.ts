import type { Command } from 'commander';
import { InputError } from '../../common/errors.js';
import { absTarget, followStream, print } from '../command-support.js';
import { identityHelp, readIdentityOption } from '../identity.js';

/** `5%`, `5` or `0.5%`: the share of pieces `--sample` reads, as a fraction. */
function parseShare(text: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const pct = m ? Number(m[1]) : NaN;
  if (!(pct > 0 && pct <= 100)) throw new InputError(`--sample '${text}' is not a share of 0-100% (e.g. 5%)`);
  return pct / 100;
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('recompute the checksum of every file of a set (every set without an id) and of every file and piece it holds')
    .argument('[id]', 'backup id; without one, every set of the target, each stored piece read once')
    .requiredOption('-t, --target <path>', 'shared backup location')
    .option('--quick', 'check the artifacts only, not the entries inside the archives')
    .option('--sample <share>', 'format 3: read this share of the stored pieces, chosen at random (e.g. 5%); the others are only looked up')
    .option('--identity <file>', `encrypted sets: read and check every piece too (without it: the MAC, the files of the set, and that every piece exists); ${identityHelp}`)
    .action(async (id: string | undefined, o: { target: string; quick?: boolean; sample?: string; identity?: string }, cmd: Command) => {
      const sample = o.sample === undefined ? 0 : parseShare(o.sample);
      const identity = await readIdentityOption(o.identity);
      const s = await followStream(cmd, (c) => c.Verify({ target: absTarget(o.target), backupId: id ?? '', quick: Boolean(o.quick), sample, identity }) as never);
      const what = id ? `backup ${id}` : `every backup in ${o.target}`;
      print(cmd, s, () =>
        s.status === 'ok'
          ? `${what}: every file matches its manifest${sample ? ` (${o.sample} of the pieces read)` : ''}`
          : [`${what}: ${s.reasons.length} problem(s)`, ...s.reasons.map((r) => `  ${r}`)].join('\n'),
      );
      process.exitCode = s.status === 'ok' ? 0 : 1;
    });
}
