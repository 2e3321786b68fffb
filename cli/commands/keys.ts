import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { Command } from 'commander';
import type { makeKeys } from '../../common/keys.js';
import { messageOf } from '../../common/errors.js';
import { FILE_MODE, exists, writeFileAtomic } from '../../common/fsutil.js';
import { shown } from '../../common/quote.js';
import { inputError, print, repeat } from '../command-support.js';
import { readIdentityOption } from '../identity.js';

/** The files `keys init` writes in its directory (FORMAT.md "Format 4", "Keys"). */
export const IDENTITY_FILE = 'identity.txt';
export const BACKUP_KEY_FILE = 'backup-key.json';

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('the keys that encrypt backup sets');
  keys
    .command('init')
    .description(`create the operator's identity (${IDENTITY_FILE}: keep it off the cluster) and the coordinator's ${BACKUP_KEY_FILE} (recipients and id key: it decrypts nothing)`)
    .option('--dir <dir>', 'where the two files go', '/etc/lsbackup/keys')
    .option('--recipient <age1...>', 'encrypt to this age recipient too, e.g. an offline escrow key (repeat)', repeat, [])
    .option('--identity <file>', `reuse this identity instead of making one (a rotation: new sets get a new key, old sets stay readable); ${IDENTITY_FILE} in --dir gets its key id`)
    .action(async (o: { dir: string; recipient: string[]; identity?: string }, cmd: Command) => {
      const identityFile = path.join(o.dir, IDENTITY_FILE);
      const keyFile = path.join(o.dir, BACKUP_KEY_FILE);
      const given = o.identity ? await readIdentityOption(o.identity) : undefined;
      if (!given && (await exists(identityFile))) throw inputError('keys', `${shown(identityFile)} exists already: pass --identity ${identityFile} to make a new backup key for it (rotation), or choose another --dir`);
      // The key code (age, ML-KEM) is loaded for this command only, not at every CLI start.
      const { backupKeyText, makeKeys: make } = await import('../../common/keys.js');
      let made: Awaited<ReturnType<typeof makeKeys>>;
      try {
        made = await make({ identityText: given, extra: o.recipient });
      } catch (err) {
        throw inputError('keys', messageOf(err));
      }
      await fsp.mkdir(o.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(identityFile, made.identityText, FILE_MODE);
      await writeFileAtomic(keyFile, backupKeyText(made.key), FILE_MODE);
      const out = { identity: identityFile, backupKey: keyFile, recipients: made.key.recipients, keyId: made.key.keyId };
      print(cmd, out, () =>
        [
          `${made.created ? 'created' : 'updated'} ${identityFile}: the identity that decrypts every set; keep it (and a copy) off the cluster`,
          `created ${keyFile}: give it to the coordinator (backup_key_file); it encrypts and authenticates, it decrypts nothing`,
          `recipients: ${made.key.recipients.join(', ')}; key id ${made.key.keyId}`,
        ].join('\n'),
      );
    });
}
