import { promises as fsp } from 'node:fs';
import { messageOf } from '../common/errors.js';
import { shown } from '../common/quote.js';
import { inputError } from './command-support.js';

/*
 * The operator's identity file, read by the CLI for one call (FORMAT.md "Format 4"): a plain one
 * as `lsbackup keys init` or age-keygen write it, or one protected with a passphrase (`age -p`,
 * binary or armored), opened here with LSBACKUP_IDENTITY_PASSPHRASE. Its text goes to the
 * coordinator over mTLS for this call only. The age code is loaded only when an identity is
 * given: every CLI call imports this file for its help text, and loading age takes a tenth of
 * the CLI's start.
 */

/** Where --identity comes from when not given. */
export const IDENTITY_ENV = 'LSBACKUP_IDENTITY_FILE';
const PASSPHRASE_ENV = 'LSBACKUP_IDENTITY_PASSPHRASE';

export const identityHelp = `the operator's age identity file, for an encrypted set (default: $${IDENTITY_ENV}); a passphrase-protected one (age -p) is opened with $${PASSPHRASE_ENV}`;

/** The identity's text, or '' when none was given; a one-line input error when it is not one. */
export async function readIdentityOption(file: string | undefined): Promise<string> {
  const chosen = file ?? process.env[IDENTITY_ENV];
  if (!chosen) return '';
  let data: Buffer;
  try {
    data = await fsp.readFile(chosen);
  } catch (err) {
    throw inputError('identity', `identity file ${shown(chosen)} cannot be read: ${messageOf(err)}`);
  }
  const [{ Decrypter, armor }, { parseIdentities }] = await Promise.all([import('age-encryption'), import('../common/age.js')]);
  let text = data.toString('utf8');
  const armored = text.startsWith('-----BEGIN AGE ENCRYPTED FILE-----');
  if (armored || text.startsWith('age-encryption.org/v1')) {
    const passphrase = process.env[PASSPHRASE_ENV];
    if (!passphrase) throw inputError('identity', `identity file ${shown(chosen)} is protected by a passphrase: give it in $${PASSPHRASE_ENV}`);
    try {
      const d = new Decrypter();
      d.addPassphrase(passphrase);
      text = await d.decrypt(armored ? armor.decode(text) : new Uint8Array(data), 'text');
    } catch (err) {
      throw inputError('identity', `identity file ${shown(chosen)} does not open with that passphrase (${messageOf(err)})`);
    }
  }
  try {
    parseIdentities(text, `identity file ${shown(chosen)}`);
  } catch (err) {
    throw inputError('identity', messageOf(err));
  }
  return text;
}
