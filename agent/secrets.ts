import { promises as fsp } from 'node:fs';
import { InputError } from '../common/errors.js';

/** A secret file that cannot be read or holds no secret. Its message names the setting and the file, never the content. */
export class SecretFileError extends InputError {}

/**
 * Reads a secret named by a setting (`password_file`, `api_key_file`) at every use, so a rotated
 * secret needs no agent restart. The first line is the secret: a trailing newline or CRLF, as
 * editors and `echo` leave it, is not part of it, and an empty first line is refused.
 */
export async function readSecretFile(file: string, setting: string): Promise<string> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new SecretFileError(`${setting} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const secret = text.split(/\r?\n/)[0] ?? '';
  if (secret === '') throw new SecretFileError(`${setting} ${file}: its first line is empty`);
  return secret;
}
