/**
 * common/age.ts against Debian's `age`, both ways: what lsbackup seals, `age -d` opens (whole
 * files and streams, empty to several chunks, one and two recipients); what `age -e` writes,
 * lsbackup opens; a wrong identity and a changed, cut or extended file are refused with one line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { AgeOpener, AgeSealer, parseIdentities } from '../common/age.js';
import { tempDir } from './helpers/harness.js';

function keygen(dir: string, name: string): { file: string; recipient: string; secret: string } {
  const file = path.join(dir, name);
  try {
    execFileSync('age-keygen', ['-o', file], { stdio: 'pipe' });
  } catch {
    assert.fail("Debian's age is needed for this test: apt-get install age");
  }
  const text = readFileSync(file, 'utf8');
  return { file, recipient: /# public key: (age1[0-9a-z]+)/.exec(text)![1]!, secret: parseIdentities(text, name).secretKeys[0]! };
}

// Sizes around the 64 KiB chunk: empty, one byte, a chunk exactly, a chunk and one, several.
const SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_003];

test('age: lsbackup seals what age -d opens, and opens what age -e writes', async () => {
  const dir = tempDir('age');
  const a = keygen(dir, 'a.txt');
  const b = keygen(dir, 'b.txt');
  const sealer = new AgeSealer([a.recipient, b.recipient]);
  for (const size of SIZES) {
    const data = randomBytes(size);
    const whole = path.join(dir, `whole-${size}.age`);
    writeFileSync(whole, sealer.seal(data));
    const streamed = path.join(dir, `stream-${size}.age`);
    // Fed in odd-sized pieces: the stream must cut chunks where age does, whatever it is given.
    const pieces = [];
    for (let at = 0; at < size; at += 10_007) pieces.push(data.subarray(at, at + 10_007));
    writeFileSync(streamed, await buffer(Readable.from(pieces).pipe(sealer.sealStream())));
    for (const file of [whole, streamed]) {
      for (const id of [a, b]) assert.ok(execFileSync('age', ['-d', '-i', id.file, file], { maxBuffer: 1 << 26 }).equals(data), `${path.basename(file)} with ${path.basename(id.file)}`);
    }
    const plainFile = path.join(dir, `plain-${size}`);
    writeFileSync(plainFile, data);
    const theirs = execFileSync('age', ['-e', '-r', a.recipient, plainFile], { maxBuffer: 1 << 26 });
    const opener = new AgeOpener([a.secret]);
    assert.ok((await opener.open(theirs, 'theirs')).equals(data), `open() of age -e, ${size} bytes`);
    assert.ok((await buffer(Readable.from([theirs.subarray(0, 7), theirs.subarray(7)]).pipe(opener.openStream('theirs')))).equals(data), `openStream() of age -e, ${size} bytes`);
  }
});

test('age: a wrong identity, and a changed, cut or extended file, are refused with one line', async () => {
  const dir = tempDir('age-bad');
  const a = keygen(dir, 'a.txt');
  const stranger = keygen(dir, 'c.txt');
  const sealed = new AgeSealer([a.recipient]).seal(randomBytes(200_000));
  const oneLine = (why: RegExp) => (err: Error) => {
    assert.match(err.message, why);
    assert.ok(!err.message.includes('\n'), err.message);
    return true;
  };
  await assert.rejects(new AgeOpener([stranger.secret]).open(sealed, 'piece X'), oneLine(/piece X is not encrypted to this identity/));
  const opener = new AgeOpener([a.secret]);
  const changed = Buffer.from(sealed);
  changed[changed.length - 1000]! ^= 0x40;
  await assert.rejects(opener.open(changed, 'piece Y'), oneLine(/piece Y was changed or damaged/));
  const streamOf = (data: Buffer) => buffer(Readable.from([data]).pipe(opener.openStream('stream Z')));
  await assert.rejects(streamOf(changed), oneLine(/stream Z was changed/));
  // Cut at a chunk boundary: every chunk left authenticates, but the last one is not marked last.
  const headerAndNonce = sealed.length - (200_000 + 4 * 16);
  await assert.rejects(streamOf(sealed.subarray(0, headerAndNonce + 2 * (65536 + 16))), oneLine(/stream Z was changed, cut or damaged/));
  await assert.rejects(opener.open(Buffer.concat([sealed, Buffer.from('more')]), 'piece W'), oneLine(/piece W was changed or damaged/));
  await assert.rejects(opener.open(Buffer.from('not age at all'), 'piece V'), oneLine(/piece V is not an age file/));
});
