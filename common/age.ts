import { createCipheriv, createDecipheriv, createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { bech32 } from '@scure/base';
import { Decrypter } from 'age-encryption';
import { IntegrityError, InputError, messageOf } from './errors.js';

/*
 * The age v1 file format (https://age-encryption.org/v1), X25519 recipients: what every encrypted
 * file of format 4 is (FORMAT.md "Format 4"), so that Debian's `age -d` reads any of it.
 *
 * Unwrapping a file key with an identity goes through the age-encryption library (typage), which
 * parses identities and checks the header MAC. The wrap and the payload are made here with
 * Node's crypto: the library's pure-JavaScript ChaCha20-Poly1305 runs at ~70 MB/s on this machine
 * and its X25519 at ~2.4 ms per file, where OpenSSL does GB/s. test/age.test.ts checks both
 * directions against the `age` CLI.
 */

const VERSION_LINE = 'age-encryption.org/v1';
const X25519_LABEL = 'age-encryption.org/v1/X25519';
/** Plaintext bytes per payload chunk, and the Poly1305 tag each chunk adds. */
const CHUNK = 64 * 1024;
const TAG = 16;
const NONCE = 16;
/** A header bigger than this is not one lsbackup wrote (a few stanzas of ~100 bytes). */
const MAX_HEADER = 64 * 1024;

const b64 = (b: Buffer): string => b.toString('base64').replace(/=+$/, '');

/** The 32-byte X25519 public key of an `age1...` recipient; one line naming it when it is not one. */
export function recipientKey(recipient: string): Buffer {
  try {
    const { prefix, bytes } = bech32.decodeToBytes(recipient.trim() as `${string}1${string}`);
    if (prefix !== 'age' || bytes.length !== 32) throw new Error(`prefix ${prefix}, ${bytes.length} bytes`);
    return Buffer.from(bytes);
  } catch (err) {
    throw new InputError(`'${recipient.slice(0, 80)}' is not an age X25519 recipient (age1...): ${messageOf(err)}`);
  }
}

function chacha(key: Buffer, nonce: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  const out = Buffer.concat([c.update(data), c.final(), c.getAuthTag()]);
  return out;
}

function unchacha(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer {
  if (sealed.length < TAG) throw new Error('chunk shorter than its tag');
  const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG)), d.final()]);
}

const hkdf = (ikm: Buffer, salt: Buffer, info: string): Buffer => Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));

/** The stanza that gives `fileKey` to one X25519 recipient (age spec, "X25519 recipient stanza"). */
function x25519Stanza(fileKey: Buffer, recipient: Buffer): string {
  const eph = generateKeyPairSync('x25519');
  const ephPub = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const them = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: recipient.toString('base64url') }, format: 'jwk' });
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: them });
  if (shared.every((b) => b === 0)) throw new InputError('an age recipient is a low-order point');
  const wrapKey = hkdf(shared, Buffer.concat([ephPub, recipient]), X25519_LABEL);
  const body = chacha(wrapKey, Buffer.alloc(12), fileKey);
  return `-> X25519 ${b64(ephPub)}\n${b64(body)}\n`;
}

/**
 * One file key and its header, wrapped to every recipient once: what a run's files share
 * (FORMAT.md "Format 4" says why pieces share a header). Each file still gets its own nonce.
 */
export class AgeSealer {
  readonly header: Buffer;
  private readonly fileKey: Buffer;

  constructor(readonly recipients: string[]) {
    if (recipients.length === 0) throw new InputError('encryption needs at least one recipient');
    this.fileKey = randomBytes(16);
    const keys = recipients.map(recipientKey);
    const head = `${VERSION_LINE}\n${keys.map((k) => x25519Stanza(this.fileKey, k)).join('')}---`;
    const mac = createHmac('sha256', hkdf(this.fileKey, Buffer.alloc(0), 'header')).update(head).digest();
    this.header = Buffer.from(`${head} ${b64(mac)}\n`);
  }

  /** A new file's start (header and nonce) and the key its payload chunks are sealed with. */
  begin(): { start: Buffer; payloadKey: Buffer } {
    const nonce = randomBytes(NONCE);
    return { start: Buffer.concat([this.header, nonce]), payloadKey: hkdf(this.fileKey, nonce, 'payload') };
  }

  /** `data` as one whole age file. */
  seal(data: Buffer): Buffer {
    const { start, payloadKey } = this.begin();
    const out: Buffer[] = [start];
    const n = Math.max(1, Math.ceil(data.length / CHUNK));
    for (let i = 0; i < n; i++) out.push(chacha(payloadKey, chunkNonce(i, i === n - 1), data.subarray(i * CHUNK, (i + 1) * CHUNK)));
    return Buffer.concat(out);
  }

  /** A stream that turns plaintext into one age file. */
  sealStream(): Transform {
    return new SealStream(this);
  }
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const n = Buffer.alloc(12);
  n.writeUIntBE(counter, 5, 6);
  n[11] = last ? 1 : 0;
  return n;
}

class SealStream extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private counter = 0;
  private readonly payloadKey: Buffer;

  constructor(sealer: AgeSealer) {
    super();
    const { start, payloadKey } = sealer.begin();
    this.payloadKey = payloadKey;
    this.push(start);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // A chunk is sealed once more data follows it: only then is it known not to be the last.
    if (this.pendingBytes > CHUNK) {
      let all = Buffer.concat(this.pending);
      while (all.length > CHUNK) {
        this.push(chacha(this.payloadKey, chunkNonce(this.counter++, false), all.subarray(0, CHUNK)));
        all = all.subarray(CHUNK);
      }
      this.pending = [all];
      this.pendingBytes = all.length;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.push(chacha(this.payloadKey, chunkNonce(this.counter++, true), Buffer.concat(this.pending)));
    done();
  }
}

/** Where an age file's header ends (after the MAC line), or -1 while it has not ended within `data`. */
function headerEnd(data: Buffer): number {
  const mark = data.indexOf('\n--- ');
  if (mark < 0) return -1;
  const eol = data.indexOf(0x0a, mark + 1);
  return eol < 0 ? -1 : eol + 1;
}

/** An operator's identity file, read: its age identities and the lsbackup key ids it vouches for. */
export interface Identities {
  secretKeys: string[];
  keyIds: string[];
}

/**
 * Parses an identity file as age-keygen and `lsbackup keys init` write it: `AGE-SECRET-KEY-1...`
 * lines, `#` comments (`# lsbackup key id: <hex>` among them). Never echoes a key in an error.
 */
export function parseIdentities(text: string, what: string): Identities {
  const secretKeys: string[] = [];
  const keyIds: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const id = /^#\s*lsbackup key id:\s*([0-9a-f]{64})\s*$/.exec(line);
    if (id) keyIds.push(id[1]!);
    else if (line.startsWith('AGE-SECRET-KEY-1')) secretKeys.push(line);
    else if (line && !line.startsWith('#')) throw new InputError(`${what} is not an age identity file (a line is neither a comment nor AGE-SECRET-KEY-1...)`);
  }
  if (secretKeys.length === 0) throw new InputError(`${what} holds no age identity (AGE-SECRET-KEY-1...)`);
  return { secretKeys, keyIds };
}

/**
 * Decrypts age files with an operator's identities. File keys are unwrapped once per distinct
 * header (the pieces of one backup share one), then the payload is opened with Node's crypto.
 */
export class AgeOpener {
  private readonly decrypter = new Decrypter();
  private readonly fileKeys = new Map<string, Promise<Buffer>>();

  constructor(secretKeys: string[]) {
    for (const k of secretKeys) this.decrypter.addIdentity(k);
  }

  private fileKey(header: Buffer, what: string): Promise<Buffer> {
    const key = header.toString('latin1');
    let p = this.fileKeys.get(key);
    if (!p) {
      p = this.decrypter.decryptHeader(new Uint8Array(header)).then(
        (k) => Buffer.from(k),
        (err: unknown) => {
          this.fileKeys.delete(key);
          const m = messageOf(err);
          throw new IntegrityError(/no identity matched/.test(m) ? `${what} is not encrypted to this identity` : `${what}: age header refused (${m})`);
        },
      );
      this.fileKeys.set(key, p);
    }
    return p;
  }

  /** A whole age file's plaintext; one line naming `what` when it is not one this identity opens, or was changed. */
  async open(data: Buffer, what: string): Promise<Buffer> {
    return Buffer.concat(await this.openChunks(data, what));
  }

  /**
   * As open(), the plaintext in its 64 KiB chunks: joining them into one buffer costs more than
   * decrypting them on this kind of machine (a fresh 8 MiB buffer is page faults and a pass over
   * memory), so a reader that streams them on (gunzip) takes them as they are.
   */
  async openChunks(data: Buffer, what: string): Promise<Buffer[]> {
    const end = headerEnd(data.subarray(0, MAX_HEADER));
    if (!data.subarray(0, VERSION_LINE.length).equals(Buffer.from(VERSION_LINE)) || end < 0) throw new IntegrityError(`${what} is not an age file`);
    const fileKey = await this.fileKey(data.subarray(0, end), what);
    if (data.length < end + NONCE + TAG) throw new IntegrityError(`${what} is truncated`);
    const payloadKey = hkdf(fileKey, data.subarray(end, end + NONCE), 'payload');
    const body = data.subarray(end + NONCE);
    const n = Math.max(1, Math.ceil(body.length / (CHUNK + TAG)));
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const sealed = body.subarray(i * (CHUNK + TAG), (i + 1) * (CHUNK + TAG));
      try {
        const plain = unchacha(payloadKey, chunkNonce(i, i === n - 1), sealed);
        if (i === n - 1 && plain.length === 0 && n > 1) throw new Error('empty last chunk');
        out.push(plain);
      } catch {
        throw new IntegrityError(`${what} was changed or damaged (age chunk ${i} fails its authentication)`);
      }
    }
    return out;
  }

  /** A stream that turns one age file into its plaintext, refusing a changed, cut or extended one. */
  openStream(what: string): Transform {
    return new OpenStream(this, what);
  }

  /** For OpenStream. */
  async keysFor(header: Buffer, nonce: Buffer, what: string): Promise<Buffer> {
    return hkdf(await this.fileKey(header, what), nonce, 'payload');
  }
}

class OpenStream extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  private payloadKey: Buffer | undefined;
  private counter = 0;

  constructor(private readonly opener: AgeOpener, private readonly what: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.advance(false).then(() => done(), done);
  }

  override _flush(done: TransformCallback): void {
    this.advance(true).then(() => done(), done);
  }

  private async advance(ended: boolean): Promise<void> {
    if (!this.payloadKey) {
      const end = headerEnd(this.buf.subarray(0, MAX_HEADER));
      if (end < 0 || this.buf.length < end + NONCE) {
        if (ended || this.buf.length > MAX_HEADER) throw new IntegrityError(`${this.what} is not an age file, or is truncated`);
        return;
      }
      if (!this.buf.subarray(0, VERSION_LINE.length).equals(Buffer.from(VERSION_LINE))) throw new IntegrityError(`${this.what} is not an age file`);
      this.payloadKey = await this.opener.keysFor(this.buf.subarray(0, end), this.buf.subarray(end, end + NONCE), this.what);
      this.buf = this.buf.subarray(end + NONCE);
    }
    // Open every chunk that is known not to be the last; the last one at the end.
    while (this.buf.length > CHUNK + TAG) {
      this.push(this.openChunk(this.buf.subarray(0, CHUNK + TAG), false));
      this.buf = this.buf.subarray(CHUNK + TAG);
    }
    if (ended) {
      const plain = this.openChunk(this.buf, true);
      if (plain.length === 0 && this.counter > 1) throw new IntegrityError(`${this.what} was changed or damaged (an empty last age chunk)`);
      this.push(plain);
      this.buf = Buffer.alloc(0);
    }
  }

  private openChunk(sealed: Buffer, last: boolean): Buffer {
    try {
      return unchacha(this.payloadKey!, chunkNonce(this.counter++, last), sealed);
    } catch {
      throw new IntegrityError(`${this.what} was changed, cut or damaged (age chunk ${this.counter - 1} fails its authentication)`);
    }
  }
}
