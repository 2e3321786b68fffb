import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { filesComponent } from '../agent/components/files.js';
import { sha256File } from '../common/hash.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';

const GiB = 1024 ** 3;

test('a 5 GiB sparse file round-trips through a stored (zip64) archive with the same SHA-256', { timeout: 15 * 60_000 }, async () => {
  const src = tempDir('large-src');
  const target = tempDir('large-target');
  try {
    const file = path.join(src, 'data', 'big.bin');
    await fsp.mkdir(path.dirname(file));
    const fh = await fsp.open(file, 'w');
    await fh.truncate(5 * GiB);
    // Marks past every 32-bit boundary, so a size or offset cut to 32 bits cannot hash the same.
    for (const at of [0, 4 * GiB - 3, 4 * GiB + 7, 5 * GiB - 16]) await fh.write(Buffer.from(`mark@${at}`), 0, undefined, at);
    await fh.close();
    const original = await sha256File(file);
    assert.equal(original.size, 5 * GiB);

    const rt = runtimeOf([filesComponent('grafana', [path.join(src, 'data')])]);
    rt.compressionLevel = 0; // stored: the archive itself passes 4 GiB, not only the entry
    // Format 2: the tar archive itself passes 4 GiB (format 3 would store the zeros as one piece).
    const { id, manifest } = await backupLocal(rt, target, [], { format: 2 });
    assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
    const artifact = manifest.parts[0]!.artifacts[0]!;
    assert.ok(artifact.size > 5 * GiB, `archive is ${artifact.size} bytes`);
    assert.equal(manifest.parts[0]!.entries.find((e) => e.path === file)?.sha256, original.sha256);

    await fsp.rm(path.join(src, 'data'), { recursive: true });
    const r = await restoreLocal(rt, target, id);
    assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
    assert.deepEqual(await sha256File(file), original);
    assert.ok(id);
  } finally {
    await fsp.rm(src, { recursive: true, force: true });
    await fsp.rm(target, { recursive: true, force: true });
  }
});
