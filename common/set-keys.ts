import { createHmac } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { AgeOpener, AgeSealer, parseIdentities } from './age.js';
import { IntegrityError, messageOf } from './errors.js';
import { idKeyFromStore } from './keys.js';
import { FORMAT_4, readManifestKeyed, type Manifest, type Part } from './manifest.js';
import { STORE_DIR, type PieceCodec } from './store.js';

/*
 * What reading or writing one encrypted set (FORMAT.md "Format 4") needs, in one place: the
 * keyed piece ids, the age files, and for a reader the check that the identity vouches for the
 * set's key and that the manifest carries that key's MAC.
 */

/** A piece's id under a key: HMAC-SHA256(idKey, bytes), so that nobody without the key can test the store for a known file. */
export const keyedIdOf = (idKey: Buffer) => (data: Buffer): string => createHmac('sha256', idKey).update(data).digest('hex');

export function pieceCodec(idKey: Buffer, sealer?: AgeSealer, opener?: AgeOpener): PieceCodec {
  return {
    idOf: keyedIdOf(idKey),
    seal(packed) {
      if (!sealer) throw new IntegrityError('this store was opened to read: it writes no piece');
      return sealer.seal(packed);
    },
    ...(opener ? { open: (stored: Buffer, what: string) => opener.openChunks(stored, what) } : {}),
  };
}

/** What an agent's backup of a format-4 set holds: the recipients' sealer and a codec keyed with the idKey, never an identity. */
export interface SetSealing {
  sealer: AgeSealer;
  codec: PieceCodec;
}

export function setSealing(recipients: string[], idKey: Buffer): SetSealing {
  const sealer = new AgeSealer(recipients);
  return { sealer, codec: pieceCodec(idKey, sealer) };
}

/** What a reader of one encrypted set holds, once the identity has opened its key. */
export interface SetOpening {
  opener: AgeOpener;
  codec: PieceCodec;
}

/**
 * Opens set `id` with the operator's identity file (its text, never written anywhere): the key
 * file the manifest names, believed only when the identity vouches for its key id (or
 * `keyIds`), then the manifest's MAC. Unencrypted sets give no opening. One line naming what
 * does not fit: a wrong identity fails here, before anything is written.
 */
export async function openSet(target: string, manifest: Manifest, identityText: string, keyIds: string[] = []): Promise<{ manifest: Manifest; opening?: SetOpening }> {
  if (manifest.format !== FORMAT_4) return { manifest };
  if (!identityText) throw new IntegrityError(`backup ${manifest.id} is encrypted (to ${manifest.encryption!.recipients.join(', ')}): pass --identity <identity file>`);
  const ids = parseIdentities(identityText, 'the identity file');
  const opener = new AgeOpener(ids.secretKeys);
  const idKey = await idKeyFromStore(path.join(target, STORE_DIR), manifest.encryption!.keyId, opener, [...ids.keyIds, ...keyIds]);
  const keyed = await readManifestKeyed(target, manifest.id, idKey);
  return { manifest: keyed, opening: { opener, codec: pieceCodec(idKey, undefined, opener) } };
}

/** The meta of a format-4 part, from its encrypted meta artifact; other formats' parts carry it. */
export async function partMeta(setDir: string, part: Part, opening: SetOpening | undefined): Promise<Record<string, string>> {
  const a = part.artifacts.find((x) => x.kind === 'meta');
  if (!a) return part.meta;
  if (!opening) throw new IntegrityError(`${a.path} is encrypted: it is read with the identity`);
  let data: Buffer;
  try {
    data = await fsp.readFile(path.join(setDir, a.path));
  } catch (err) {
    throw new IntegrityError(`${a.path} cannot be read: ${messageOf(err)}`);
  }
  const plain = await opening.opener.open(data, a.path);
  let meta: unknown;
  try {
    meta = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new IntegrityError(`${a.path} does not hold JSON`);
  }
  if (!meta || typeof meta !== 'object' || Array.isArray(meta) || Object.values(meta).some((v) => typeof v !== 'string')) throw new IntegrityError(`${a.path} does not hold a meta object of strings`);
  return meta as Record<string, string>;
}
