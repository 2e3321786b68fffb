import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import CRC32 from 'crc-32';
import { gzipSync } from 'node:zlib';
import unzipper from 'unzipper';
import { extractVerified, writeZip } from '../common/archive.js';
import { crc32IsNative } from '../common/native-crc32.js';
import { run } from '../common/exec.js';
import { tempDir } from './helpers/harness.js';

test('archiver computes CRC-32 natively on this Node, with crc-32 results across split chunks', () => {
  assert.ok(crc32IsNative, 'zlib.crc32 is missing: Node >= 20.15 is needed for the fast CRC path');
  const check = Buffer.from('123456789');
  assert.equal(CRC32.buf(check) >>> 0, 0xcbf43926);
  const data = randomBytes(3 * 1024 * 1024 + 17);
  const whole = CRC32.buf(data) >>> 0;
  let running = 0;
  for (let off = 0; off < data.length; off += 65_521) running = CRC32.buf(data.subarray(off, off + 65_521), running);
  assert.equal(running >>> 0, whole);
});

test('zips written at level 0 and 6 carry CRCs that an independent reader (python zipfile) accepts', async () => {
  const src = tempDir('crc-src');
  await fsp.writeFile(path.join(src, 'random.bin'), randomBytes(5 * 1024 * 1024 + 3));
  await fsp.writeFile(path.join(src, 'text.json'), JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ i, name: `row ${i}` }))));
  await fsp.writeFile(path.join(src, 'empty'), '');
  const out = tempDir('crc-out');
  for (const level of [0, 6]) {
    const zip = path.join(out, `l${level}.zip`);
    const { entries } = await writeZip(zip, `l${level}.zip`, [src], { level });
    assert.equal(entries.filter((e) => e.type === 'file').length, 3);
    const r = await run(['python3', '-c', 'import sys, zipfile; bad = zipfile.ZipFile(sys.argv[1]).testzip(); print(bad or "ok")', zip]);
    assert.equal(r.stdout.trim(), 'ok', `level ${level}: python zipfile found a bad CRC in ${r.stdout}`);
  }
});

test('at level 6 already-compressed files are stored and text is deflated, in one archive that restores byte for byte', async () => {
  const src = tempDir('auto-store-src');
  const random = randomBytes(2 * 1024 * 1024);
  const gz = gzipSync(randomBytes(1024 * 1024).toString('hex'));
  await fsp.writeFile(path.join(src, 'chunk.bin'), random);
  await fsp.writeFile(path.join(src, 'log.gz'), gz);
  const text = JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ i })));
  await fsp.writeFile(path.join(src, 'text.json'), text);
  await fsp.writeFile(path.join(src, 'small-random'), randomBytes(1000));
  const zip = path.join(tempDir('auto-store-out'), 'files.zip');
  const { artifact, entries } = await writeZip(zip, 'files.zip', [src], { level: 6 });
  const methods = Object.fromEntries((await unzipper.Open.file(zip)).files.map((f) => [path.basename(f.path), f.compressionMethod]));
  assert.deepEqual(methods, { [path.basename(src)]: 0, 'chunk.bin': 0, 'log.gz': 0, 'text.json': 8, 'small-random': 8 });
  const rest = artifact.size - random.length - gz.length - 1000;
  assert.ok(rest < text.length / 4, `archive of ${artifact.size} bytes leaves ${rest} for ${text.length} bytes of text: it was not deflated`);

  const dest = tempDir('auto-store-dest');
  await extractVerified(zip, entries, (e) => (e.type === 'file' ? path.join(dest, path.basename(e.path)) : undefined));
  assert.deepEqual(await fsp.readFile(path.join(dest, 'chunk.bin')), random);
  assert.deepEqual(await fsp.readFile(path.join(dest, 'log.gz')), gz);
});
