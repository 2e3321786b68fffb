/**
 * Tar trees (FORMAT.md "Format 2") as written by common/tar-tree.ts: GNU tar, an independent
 * reader, reads them (no lock-in), and reading them back checks every file against its entry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EntriesWriter, partEntries } from '../common/entries-file.js';
import { extractTree, treeFileName, writeTree } from '../common/tar-tree.js';
import type { Entry, Part } from '../common/manifest.js';
import { tempDir } from './helpers/harness.js';

const LONG = `${'long-directory-name-'.repeat(4)}/${'a-file-name-longer-than-one-hundred-characters-'.repeat(3)}.conf`;

async function makeTree(): Promise<{ src: string; files: Record<string, Buffer> }> {
  const src = path.join(tempDir('tar-src'), 'etc/app');
  const files: Record<string, Buffer> = {
    'random.bin': randomBytes(5 * 1024 * 1024 + 3),
    'text.json': Buffer.from(JSON.stringify(Array.from({ length: 60_000 }, (_, i) => ({ i, name: `row ${i}` })))),
    empty: Buffer.alloc(0),
    'größe ünïcode.conf': Buffer.from('ä=1\n'),
    [LONG]: Buffer.from('deep\n'),
  };
  for (const [rel, data] of Object.entries(files)) {
    await fsp.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
    await fsp.writeFile(path.join(src, rel), data);
  }
  await fsp.symlink('text.json', path.join(src, 'current.json'));
  return { src, files };
}

/** Writes one tree artifact and its entries file, as the agent does for a part. */
async function writePart(src: string, level: number): Promise<{ dir: string; part: Part; tarFile: string }> {
  const dir = tempDir('tar-set');
  const out = path.join(dir, 'node1/haproxy');
  await fsp.mkdir(out, { recursive: true });
  const entries = new EntriesWriter(path.join(out, 'entries.jsonl.gz'), 'node1/haproxy/entries.jsonl.gz');
  const tarRel = `node1/haproxy/${treeFileName('files', level)}`;
  const tree = await writeTree(path.join(dir, tarRel), tarRel, [src], { level, entries });
  const list = await entries.finish();
  const part: Part = { node: 'node1', component: 'haproxy', status: 'ok', reason: '', durationMs: 0, bytes: 0, meta: {}, artifacts: [tree, list], entryCount: entries.count };
  return { dir, part, tarFile: path.join(dir, tarRel) };
}

for (const level of [0, 6]) {
  test(`level ${level}: GNU tar reads the tree (long and non-ASCII names, a symlink, an empty file) in the order of its entries`, async () => {
    const { src, files } = await makeTree();
    const { dir, part, tarFile } = await writePart(src, level);
    assert.equal(path.basename(tarFile), level === 0 ? 'files.tar' : 'files.tar.gz');
    const entries: Entry[] = [];
    for await (const e of partEntries(dir, part)) entries.push(e);
    const listed = execFileSync('tar', ['-tf', tarFile]).toString().trimEnd().split('\n').map((n) => n.replace(/\/$/, ''));
    assert.deepEqual(listed, entries.map((e) => e.name), 'the tar holds the entries, in their order');
    const out = tempDir('gnu-tar-out');
    execFileSync('tar', ['-xf', tarFile, '-C', out]);
    for (const [rel, data] of Object.entries(files)) assert.deepEqual(await fsp.readFile(path.join(out, src, rel)), data, rel);
    assert.equal(await fsp.readlink(path.join(out, src, 'current.json')), 'text.json');
  });
}

test('extractTree writes every file checked against its entry; a file whose bytes differ from its entry refuses and is removed', async () => {
  const { src, files } = await makeTree();
  const { dir, part, tarFile } = await writePart(src, 6);
  const entries: Entry[] = [];
  for await (const e of partEntries(dir, part)) entries.push(e);
  const dest = tempDir('extract-dest');
  const destFor = (e: Entry) => (e.type === 'file' ? path.join(dest, Buffer.from(e.path).toString('hex').slice(-40)) : undefined);
  await extractTree(tarFile, entries, destFor);
  for (const e of entries.filter((x) => x.type === 'file')) assert.deepEqual(await fsp.readFile(destFor(e)!), files[path.relative(src, e.path)], e.path);

  const wrong = entries.map((e) => (e.path.endsWith('text.json') ? { ...e, sha256: '0'.repeat(64) } : e));
  const dest2 = tempDir('extract-dest2');
  const at = (e: Entry) => (e.type === 'file' ? path.join(dest2, path.basename(e.path)) : undefined);
  await assert.rejects(extractTree(tarFile, wrong, at), /text\.json: extracted \d+ bytes with sha256 .*, its entry says/);
  assert.ok(!(await fsp.stat(path.join(dest2, 'text.json')).catch(() => undefined)), 'the wrong file is not left behind');
});

test('a backup cancelled while a large file streams rejects, removes its tree and leaves the process running', async () => {
  const src = path.join(tempDir('tar-cancel'), 'etc/app');
  await fsp.mkdir(src, { recursive: true });
  // Zeros are quick to write here and slow enough to deflate that the cancel lands mid-file.
  const fh = await fsp.open(path.join(src, 'big.map'), 'w');
  const mib = Buffer.alloc(1 << 20);
  for (let i = 0; i < 400; i++) await fh.write(mib);
  await fh.close();
  const dir = tempDir('tar-cancel-set');
  const entries = new EntriesWriter(path.join(dir, 'entries.jsonl.gz'), 'entries.jsonl.gz');
  const stop = new AbortController();
  let streamed = 0;
  const crashed: unknown[] = [];
  const onCrash = (err: unknown) => crashed.push(err);
  process.on('uncaughtException', onCrash);
  try {
    await assert.rejects(
      writeTree(path.join(dir, 'files.tar.gz'), 'files.tar.gz', [src], { level: 6, entries, signal: stop.signal, onBytes: (n) => (streamed += n) > 8 << 20 && stop.abort() }),
      /backup cancelled/,
    );
    await entries.abort();
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    process.off('uncaughtException', onCrash);
  }
  assert.deepEqual(crashed, [], 'nothing was thrown outside the call');
  assert.ok(streamed < 400 << 20, `stopped mid-file (${streamed} bytes read)`);
  assert.deepEqual(await fsp.readdir(dir), [], 'no tree or entries file is left');
});
