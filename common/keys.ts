import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { AgeOpener, AgeSealer, parseIdentities, recipientKey } from './age.js';
import { InputError, IntegrityError, messageOf } from './errors.js';
import { FILE_MODE, exists, writeFileAtomic } from './fsutil.js';
import { checked, recipientSchema } from './manifest.js';
import { shown } from './quote.js';

/*
 * The keys of format 4 (FORMAT.md "Format 4"): the operator's identity, which decrypts, and the
 * backup key the coordinator holds, which encrypts (recipients) and authenticates (idKey) but
 * decrypts nothing.
 */

export const BACKUP_KEY_FORMAT = 'lsbackup-key/1';
const HEX64 = /^[0-9a-f]{64}$/;

export const backupKeySchema = z.object({
  format: z.literal(BACKUP_KEY_FORMAT),
  recipients: z.array(recipientSchema).min(1),
  idKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'expected 32 bytes in base64'),
  keyId: z.string().regex(HEX64, 'expected 64 lower-case hex digits'),
});
export type BackupKeyFile = z.output<typeof backupKeySchema>;

/** A backup key as the code uses it. */
export interface BackupKey {
  recipients: string[];
  idKey: Buffer;
  keyId: string;
}

/** The public name of an idKey: what a manifest and an identity file name it by. */
export const keyIdOf = (idKey: Buffer): string => createHash('sha256').update('lsbackup-key-id/1\0').update(idKey).digest('hex');

export function backupKeyOf(file: BackupKeyFile): BackupKey {
  const idKey = Buffer.from(file.idKey, 'base64');
  if (keyIdOf(idKey) !== file.keyId) throw new IntegrityError(`backup key ${file.keyId.slice(0, 12)}…: its keyId is not the one of its idKey`);
  for (const r of file.recipients) recipientKey(r);
  return { recipients: [...file.recipients], idKey, keyId: file.keyId };
}

/** Reads the coordinator's backup_key_file; one line naming it when it is missing or not one. */
export async function readBackupKey(file: string): Promise<BackupKey> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new InputError(`backup key file ${shown(file)} cannot be read: ${messageOf(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InputError(`backup key file ${shown(file)} is not JSON (expected what 'lsbackup keys init' writes)`);
  }
  return backupKeyOf(checked(backupKeySchema, raw, `backup key file ${shown(file)}`));
}

export function backupKeyText(key: BackupKey): string {
  const file: BackupKeyFile = { format: BACKUP_KEY_FORMAT, recipients: key.recipients, idKey: key.idKey.toString('base64'), keyId: key.keyId };
  return JSON.stringify(file, null, 1) + '\n';
}

/**
 * A new backup key for the recipients: the identity's own (when `identity` is given or made
 * here) first, then `extra`. A new idKey every time: a rotation gives new piece ids, so no new set
 * names a piece that only an old identity opens.
 */
export async function makeKeys(opts: { identityText?: string; extra: string[] }): Promise<{ identityText: string; key: BackupKey; created: boolean }> {
  let identityText = opts.identityText;
  const created = identityText === undefined;
  if (identityText === undefined) {
    const secret = await generateX25519Identity();
    identityText = `# created: ${new Date().toISOString()} by lsbackup keys init\n# public key: ${await identityToRecipient(secret)}\n${secret}\n`;
  }
  const ids = parseIdentities(identityText, 'the identity file');
  const own = await identityToRecipient(ids.secretKeys[0]!);
  const recipients = [...new Set([own, ...opts.extra.map((r) => r.trim())])];
  for (const r of recipients) recipientKey(r);
  const idKey = randomBytes(32);
  const key = { recipients, idKey, keyId: keyIdOf(idKey) };
  return { identityText: `${identityText.replace(/\n?$/, '\n')}# lsbackup key id: ${key.keyId}\n`, key, created };
}

/** Where the key file of `keyId` is in a store. */
export const keyFileOf = (storeDir: string, keyId: string): string => path.join(storeDir, 'keys', `${keyId}.age`);

/** Puts the backup key's idKey in the store, encrypted to its recipients, once (every backup with that key needs it there). */
export async function publishKey(storeDir: string, key: BackupKey): Promise<void> {
  const file = keyFileOf(storeDir, key.keyId);
  if (await exists(file)) return;
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const body = JSON.stringify({ idKey: key.idKey.toString('base64'), recipients: key.recipients });
  await writeFileAtomic(file, new AgeSealer(key.recipients).seal(Buffer.from(body)), FILE_MODE);
}

/**
 * The idKey of `keyId`, from the store's key file through the operator's identity. Believed only
 * when the identity file (or `--key-id`) vouches for that key id: anyone can encrypt a key file
 * of their own to the public recipients.
 */
export async function idKeyFromStore(storeDir: string, keyId: string, opener: AgeOpener, vouched: string[]): Promise<Buffer> {
  if (!vouched.includes(keyId)) throw new IntegrityError(`the set is written with key ${keyId.slice(0, 16)}…, which the identity file does not name ('# lsbackup key id: ${keyId}'; or pass --key-id ${keyId})`);
  const file = keyFileOf(storeDir, keyId);
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (err) {
    throw new IntegrityError(`key file ${file} cannot be read: ${messageOf(err)}`);
  }
  const plain = await opener.open(data, `key file ${file}`);
  let idKey: Buffer;
  try {
    idKey = Buffer.from((JSON.parse(plain.toString('utf8')) as { idKey: string }).idKey, 'base64');
  } catch {
    throw new IntegrityError(`key file ${file} does not hold a key`);
  }
  if (keyIdOf(idKey) !== keyId) throw new IntegrityError(`key file ${file} holds another key than ${keyId.slice(0, 16)}…`);
  return idKey;
}
