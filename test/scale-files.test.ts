/**
 * A tree of 100,000 files through the CLI, coordinator and agent (issue 13): format 1 sent every
 * entry in one gRPC message and failed past ~13,000 files. Every file comes back exactly (content,
 * size, mode, owner, mtime to the nanosecond); the CLI prints counts, not file lists; no line of
 * its progress output passes 4 KiB. The million-file run is in the bench (bench/RESULTS.md).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { DemoCluster } from '../demo/cluster.js';
import { tempDir } from './helpers/harness.js';

const FILES = 100_000;
const PER_DIR = 1000;

/** One line per path: type, size, mode, owner, mtime in ns, sha256 of a file's content. Python reads the tree in one pass. */
const DESCRIBE = `
import hashlib, os, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        st = os.lstat(p)
        sha = hashlib.sha256(open(p, 'rb').read()).hexdigest() if os.path.isfile(p) and not os.path.islink(p) else ''
        # A directory's size is its file system's bookkeeping (it grows with the names it ever held): not restorable, not compared.
        size = '-' if os.path.isdir(p) and not os.path.islink(p) else str(st.st_size)
        out.append('%s %o %s %d:%d %d %s' % (os.path.relpath(p, root), st.st_mode, size, st.st_uid, st.st_gid, st.st_mtime_ns, sha))
out.sort()
sys.stdout.write('\\n'.join(out) + '\\n')
`;

/** Files of 0-4 KiB of config-like text, 1,000 per directory, with varied modes, owners and ns mtimes. */
const MAKE = `
import os, random, sys
root, count, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(13)
for i in range(count):
    d = os.path.join(root, 'd%03d' % (i // per))
    if i % per == 0: os.makedirs(d)
    p = os.path.join(d, 'f%05d.conf' % i)
    n = random.randint(0, 4096)
    with open(p, 'w') as f: f.write(('key%d = value %d\\n' % (i, n)) * (n // 20))
    os.chmod(p, random.choice([0o644, 0o600, 0o640, 0o755]))
    if i % 7 == 0: os.lchown(p, 1000 + i % 3, 1000)
    os.utime(p, ns=(1700000000123456789 + i, 1700000000123456789 + i * 1001))
`;

const describeTree = (root: string) => execFileSync('python3', ['-c', DESCRIBE, root], { maxBuffer: 1 << 30 }).toString();

describe(`a tree of ${FILES.toLocaleString('en')} files through the CLI`, () => {
  let c: DemoCluster;
  let tree = '';
  let before1 = '';
  let id = '';

  before(async () => {
    tree = path.join(tempDir('scale-files'), 'etc/kibana');
    await fsp.mkdir(tree, { recursive: true });
    execFileSync('python3', ['-c', MAKE, tree, String(FILES), String(PER_DIR)]);
    before1 = describeTree(tree);
    c = await DemoCluster.create({ nodes: 1, groups: [['kibana']], agentConfig: { components: { kibana: { config_paths: [tree] } } } });
    await c.start();
  });

  after(async () => {
    await c?.stop();
    await c?.remove();
    if (tree) await fsp.rm(path.dirname(path.dirname(tree)), { recursive: true, force: true });
  });

  test('backs up: the set is complete, counts are printed, no progress line passes 4 KiB', async () => {
    assert.equal(before1.trimEnd().split('\n').length, FILES + FILES / PER_DIR, 'the tree is what the test means');
    // stderr is not a terminal here: progress comes as JSON lines, as under the systemd timer.
    const r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    id = /backup (\d{8}T\d{6}Z)/.exec(r.stdout + r.stderr)![1]!;
    const longest = Math.max(...(r.stdout + '\n' + r.stderr).split('\n').map((l) => Buffer.byteLength(l)));
    assert.ok(longest <= 4096, `longest output line ${longest} bytes`);
    assert.ok(r.stdout.length < 20_000, `the CLI printed ${r.stdout.length} characters: counts, not a file list`);

    const show = await c.cli(['show', id, '-t', c.target]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, new RegExp(`${FILES + FILES / PER_DIR + 1} entries \\(files, directories, symlinks\\) in 1 parts`));
    // The record the agent wrote is what the manifest holds, and it names the entries file with its digest.
    const manifest = JSON.parse(await fsp.readFile(path.join(c.target, id, 'manifest.json'), 'utf8'));
    const record = JSON.parse(await fsp.readFile(path.join(c.target, id, 'node1/kibana/part.json'), 'utf8'));
    assert.equal(manifest.format, 'lsbackup-set/3');
    assert.equal(record.entryCount, FILES + FILES / PER_DIR + 1);
    assert.deepEqual(manifest.parts[0].artifacts, record.artifacts);
  });

  test('show --files streams every entry', async () => {
    const r = await c.cli(['show', id, '-t', c.target, '--files']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, FILES + FILES / PER_DIR + 1);
    assert.match(lines.find((l) => l.endsWith('/d000/f00007.conf'))!, /^- 0\d{3} 1001:1000 +\d+ node1\/kibana \//);
  });

  test('verify reads every entry; a wiped tree is restored exactly, file by file', async () => {
    const v = await c.cli(['verify', id, '-t', c.target]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    await fsp.rm(tree, { recursive: true, force: true });
    const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stdout.slice(-2000) + r.stderr.slice(-2000));
    const after1 = describeTree(tree);
    if (after1 !== before1) {
      const a = new Set(before1.split('\n'));
      const diff = after1.split('\n').filter((l) => !a.has(l)).slice(0, 5);
      assert.fail(`the restored tree differs, e.g.:\n${diff.join('\n')}`);
    }
  });
});
