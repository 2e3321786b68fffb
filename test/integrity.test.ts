/**
 * Issue #17: nothing wrong goes unnoticed. A manifest that was changed after it was written, a
 * file planted in a set, an archive entry that does not match, a restore that restores nothing:
 * each is found and refused through the CLI and the daemons, as an operator runs them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { DemoCluster } from '../demo/cluster.js';
import { MANIFEST, sealManifest, type Manifest } from '../common/manifest.js';
import { dropCluster, startCluster } from './helpers/harness.js';

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
  parts: { node: string; component: string; status: string; reason: string }[];
}

describe('manifest integrity and a complete verify', () => {
  let c: DemoCluster;
  let id = '';
  let partialId = '';
  let manifestFile = '';
  let original = '';
  let cfg = '';

  before(async () => {
    // node1's inventory groups give it postgresql, which its agent does not serve: that part fails.
    c = await startCluster({ nodes: 2, groups: [['haproxy', 'postgresql'], ['kibana']] });
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, '--component', 'haproxy']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1000));
    id = DemoCluster.result<Summary>(r.stdout).backupId;
    manifestFile = path.join(c.target, id, MANIFEST);
    original = await fsp.readFile(manifestFile, 'utf8');
    cfg = path.join(c.nodes[0]!.root, 'etc/haproxy/haproxy.cfg');
  });
  after(async () => {
    await dropCluster(c);
  });

  /** The live config as it is now, so a refused restore can be shown to have written nothing. */
  async function liveState(): Promise<string> {
    const st = await fsp.stat(cfg);
    return `${(st.mode & 0o7777).toString(8)} ${await fsp.readFile(cfg, 'utf8')}`;
  }

  async function withManifest(text: string, check: () => Promise<void>): Promise<void> {
    await fsp.writeFile(manifestFile, text, { mode: 0o600 });
    try {
      await check();
    } finally {
      await fsp.writeFile(manifestFile, original, { mode: 0o600 });
    }
  }

  async function assertRefusedEverywhere(line: RegExp): Promise<void> {
    const v = await c.cli(['verify', id, '-t', c.target]);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.equal(v.stderr.trim().split('\n').length, 1, v.stderr);
    assert.match(v.stderr, line);
    assert.ok(v.stderr.includes(manifestFile), `names the file: ${v.stderr}`);

    const show = await c.cli(['show', id, '-t', c.target]);
    assert.equal(show.code, 1, show.stdout);
    assert.match(show.stderr, line);

    const list = DemoCluster.result<{ backupId: string; status: string; reasons: string[] }[]>((await c.cli(['--json', 'list', '-t', c.target])).stdout);
    const mine = list.find((s) => s.backupId === id)!;
    assert.equal(mine.status, 'corrupt');
    assert.match(mine.reasons[0]!, line);

    await fsp.appendFile(cfg, '# changed after the backup\n');
    await fsp.chmod(cfg, 0o600);
    const before = await liveState();
    const restore = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(restore.code, 1, restore.stdout + restore.stderr);
    assert.match(restore.stderr, line);
    assert.equal(await liveState(), before, 'nothing was written');

    // The agent checks the manifest itself too, --force or not.
    const forced = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--force']);
    assert.equal(forced.code, 1);
    assert.equal(await liveState(), before, 'nothing was written with --force either');

    const diff = await c.cli(['diff', id, id, '-t', c.target]);
    assert.equal(diff.code, 1);
    assert.match(diff.stderr, line);

    const prune = await c.cli(['prune', '-t', c.target, '--keep-last', '1', '--dry-run']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stdout, new RegExp(`${id}: kept \\(corrupt: `));
  }

  test('a renamed key ("status" -> "rtatus") is a digest mismatch for every reader; nothing is restored', async () => {
    assert.match(original, /\n {2}"status": "complete"/);
    await withManifest(original.replace(/\n {2}"status": "complete"/, '\n  "rtatus": "complete"'), () => assertRefusedEverywhere(/manifest .*: digest mismatch/));
  });

  test('an entry mode changed from 33188 to 33189 in the entries file fails its checksum; haproxy.cfg does not come back 0645', async () => {
    const list = path.join(c.target, id, 'node1/haproxy/files.tree.jsonl.gz');
    const before = await fsp.readFile(list);
    const lines = gunzipSync(before).toString('utf8');
    const edited = lines.replace(new RegExp(`("path":"${cfg.replace(/[/.]/g, '\\$&')}",[^}]*"mode":)33188`), '$133189');
    assert.notEqual(edited, lines);
    await fsp.writeFile(list, gzipSync(edited));
    try {
      const v = await c.cli(['verify', id, '-t', c.target]);
      assert.equal(v.code, 1, v.stdout + v.stderr);
      assert.match(v.stdout, /node1\/haproxy\/files\.tree\.jsonl\.gz: (size \d+, manifest says \d+|sha256 mismatch)/);
      const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
      assert.notEqual(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stderr + r.stdout, /files\.tree\.jsonl\.gz/);
    } finally {
      await fsp.writeFile(list, before, { mode: 0o600 });
    }
    assert.notEqual((await fsp.stat(cfg)).mode & 0o7777, 0o645);
  });

  test('a truncated manifest is refused by every reader with one line naming it', async () => {
    await withManifest(original.slice(0, Math.floor(original.length / 2)), () => assertRefusedEverywhere(/manifest .* is not valid JSON/));
  });

  /**
   * The entries file replaced by `body` (gzipped, or raw bytes), with the manifest made consistent
   * with it again and resealed, as a writer bug would leave it: only reading the file can tell.
   */
  async function withEntries(body: string | Buffer, check: () => Promise<void>): Promise<void> {
    const rel = 'node1/haproxy/files.tree.jsonl.gz';
    const file = path.join(c.target, id, rel);
    const before = await fsp.readFile(file);
    const bytes = typeof body === 'string' ? gzipSync(body) : body;
    const m = JSON.parse(original) as Manifest;
    Object.assign(m.parts.find((p) => p.node === 'node1')!.artifacts.find((a) => a.path === rel)!, { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
    await fsp.writeFile(file, bytes);
    try {
      await withManifest(JSON.stringify(sealManifest(m), null, 2), check);
    } finally {
      await fsp.writeFile(file, before, { mode: 0o600 });
    }
  }

  async function assertEntriesRefused(line: RegExp): Promise<void> {
    const v = await c.cli(['verify', id, '-t', c.target]);
    assert.equal(v.code, 1, v.stdout + v.stderr);
    assert.match(v.stdout, line);
    const files = await c.cli(['show', id, '-t', c.target, '--files']);
    assert.notEqual(files.code, 0, files.stdout.slice(-500));
    assert.equal(files.stderr.trim().split('\n').length, 1, files.stderr);
    assert.match(files.stderr, line);
    assert.doesNotMatch(files.stderr, /\n\s+at /, 'no stack trace');
    const before = await liveState();
    const restore = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(restore.code, 1, restore.stdout + restore.stderr);
    assert.match(restore.stdout + restore.stderr, line);
    assert.doesNotMatch(restore.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(await liveState(), before, 'nothing was written');
  }

  test('an entries file with a truncated end, a wrong type or a missing key is refused by verify, show --files and restore, naming the file and line', async () => {
    const lines = gunzipSync(await fsp.readFile(path.join(c.target, id, 'node1/haproxy/files.tree.jsonl.gz'))).toString('utf8').trimEnd().split('\n');
    assert.ok(lines.length >= 3, lines.join('\n'));
    const at = lines.findIndex((l) => l.includes(`"path":${JSON.stringify(cfg)}`));
    const whole = gzipSync(lines.join('\n') + '\n');
    await withEntries(whole.subarray(0, whole.length - 12), () => assertEntriesRefused(/node1\/haproxy\/files\.tree\.jsonl\.gz is damaged: unexpected end of file/));
    const wrongType = lines.map((l, i) => (i === at ? JSON.stringify({ ...JSON.parse(l), size: 'big' }) : l));
    await withEntries(wrongType.join('\n') + '\n', () => assertEntriesRefused(new RegExp(`node1/haproxy/files\\.tree\\.jsonl\\.gz line ${at + 1}: key 'size': `)));
    const missingKey = lines.map((l, i) => (i === at ? JSON.stringify({ ...JSON.parse(l), mtimeNs: undefined }) : l));
    await withEntries(missingKey.join('\n') + '\n', () => assertEntriesRefused(new RegExp(`node1/haproxy/files\\.tree\\.jsonl\\.gz line ${at + 1}: key 'mtimeNs': `)));
    const cut = lines.slice(0, -1);
    await withEntries(cut.join('\n') + '\n', () => assertEntriesRefused(/node1\/haproxy\/files\.tree\.jsonl\.gz holds \d+ entries, its part record says \d+/));
  });

  test('a manifest without a digest is checked against the schema: one line naming the file and the first wrong key', async () => {
    const { integrity: _gone, ...m } = JSON.parse(original) as Manifest;
    const text = JSON.stringify({ ...m, status: undefined, rtatus: 'complete' }, null, 2);
    await withManifest(text, () => assertRefusedEverywhere(/manifest .*: key 'status': /));
    const badMode = structuredClone(m);
    badMode.parts[0]!.artifacts[0]!.mode = -1;
    await withManifest(JSON.stringify(badMode), async () => {
      const v = await c.cli(['verify', id, '-t', c.target]);
      assert.equal(v.code, 1);
      assert.match(v.stderr, /key 'parts\.0\.artifacts\.0\.mode': Too small/);
    });
  });

  test('a manifest of the current format without a digest is still read, and show says it is unchecked', async () => {
    const { integrity: _gone, ...m } = JSON.parse(original) as Manifest;
    await withManifest(JSON.stringify(m, null, 2), async () => {
      const show = await c.cli(['show', id, '-t', c.target]);
      assert.equal(show.code, 0, show.stderr);
      assert.match(show.stdout, /problem: manifest has no integrity digest .*unchecked/);
      const v = await c.cli(['verify', id, '-t', c.target]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    });
    const sealed = await c.cli(['show', id, '-t', c.target]);
    assert.doesNotMatch(sealed.stdout, /unchecked/);
  });

  test('verify names a file planted in the set that the manifest does not list', async () => {
    const planted = path.join(c.target, id, 'node1/haproxy/extra.bin');
    await fsp.writeFile(planted, 'planted', { mode: 0o600 });
    try {
      const v = await c.cli(['verify', id, '-t', c.target]);
      assert.equal(v.code, 1, v.stdout);
      assert.match(v.stdout, /^ {2}node1\/haproxy\/extra\.bin: not listed in the manifest$/m);
    } finally {
      await fsp.rm(planted);
    }
    assert.equal((await c.cli(['verify', id, '-t', c.target])).code, 0);
  });

  test('verify reads every entry inside every archive: a wrong entry checksum is found without a restore; --quick checks artifacts only', async () => {
    // The entry's sha256 made wrong, and the entries file and manifest made consistent with it again
    // (as a writer bug would leave them): only reading the archive finds it.
    const m = JSON.parse(original) as Manifest;
    const listPath = 'node1/haproxy/files.tree.jsonl.gz';
    const list = path.join(c.target, id, listPath);
    const before = await fsp.readFile(list);
    const lines = gunzipSync(before).toString('utf8').split('\n');
    const at = lines.findIndex((l) => l.includes(`"path":${JSON.stringify(cfg)}`));
    assert.ok(at >= 0);
    lines[at] = JSON.stringify({ ...JSON.parse(lines[at]!), sha256: '0'.repeat(64) });
    const wrong = gzipSync(lines.join('\n'));
    const art = m.parts[0]!.artifacts.find((a) => a.path === listPath)!;
    art.size = wrong.length;
    art.sha256 = createHash('sha256').update(wrong).digest('hex');
    await fsp.writeFile(list, wrong);
    try {
      await withManifest(JSON.stringify(sealManifest(m), null, 2), async () => {
        const v = await c.cli(['verify', id, '-t', c.target]);
        assert.equal(v.code, 1, v.stdout + v.stderr);
        assert.match(v.stdout, new RegExp(`node1/haproxy/files\\.tree\\.jsonl\\.gz: ${cfg.replace(/[/.]/g, '\\$&')}: sha256 mismatch`));
        const quick = await c.cli(['verify', id, '-t', c.target, '--quick']);
        assert.equal(quick.code, 0, quick.stdout + quick.stderr);
      });
    } finally {
      await fsp.writeFile(list, before, { mode: 0o600 });
    }
  });

  /** An error line that quotes hostile input: exit 2, one line, no terminal control, a sane length. */
  function assertSafeLine(r: { code: number; stderr: string }, maxBytes = 600): string {
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => l && !l.startsWith('{'));
    assert.equal(lines.length, 1, JSON.stringify(r.stderr));
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(lines[0]!, /[\u0000-\u001f\u007f-\u009f\ufffd]/, JSON.stringify(lines[0]));
    assert.ok(Buffer.byteLength(lines[0]!) <= maxBytes, `${Buffer.byteLength(lines[0]!)} bytes`);
    return lines[0]!;
  }

  async function buildDirWith(name: string, inventory: string | Buffer): Promise<string> {
    const dir = path.join(c.root, 'hostile', name);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'inventory'), inventory);
    return dir;
  }

  test('hostile input is quoted escaped and cut: terminal escapes, binary garbage, a 10 KB id, a newline in an id, NUL bytes', async () => {
    const esc = await buildDirWith('escapes', '[haproxy]\nnode1 ansible_host=127.0.0.2 \u001b]0;owned\u0007\u001b[2J\n');
    const l1 = assertSafeLine(await c.cli(['backup', '-b', esc, '-t', c.target]));
    assert.match(l1, /inventory .*escapes\/inventory line 2: .*\\x1b\]0;owned\\x07\\x1b\[2J/);

    const garbage = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 73 + 11) % 256));
    const l2 = assertSafeLine(await c.cli(['backup', '-b', await buildDirWith('garbage', garbage), '-t', c.target]));
    assert.match(l2, /inventory .*garbage\/inventory line \d+: /);

    const nul = await buildDirWith('nul', Buffer.alloc(64));
    const l3 = assertSafeLine(await c.cli(['backup', '-b', nul, '-t', c.target]));
    assert.ok(l3.includes(path.join(nul, 'inventory')), `names the file: ${l3}`);

    const long = assertSafeLine(await c.cli(['verify', 'x'.repeat(10_240), '-t', c.target]), 400);
    assert.match(long, /backup id 'x+\.\.\. \(\d+ more characters\)' is not an id/);

    const nl = assertSafeLine(await c.cli(['verify', '20261127T131500Z\nlsbackup: forged second line', '-t', c.target]));
    assert.match(nl, /backup id '20261127T131500Z\\nlsbackup: forged second line' is not an id/);

    const opt = assertSafeLine(await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--option', 'novalue\u001b[2J']));
    assert.match(opt, /--option 'novalue\\x1b\[2J' is not key=value/);

    const node = assertSafeLine(await c.cli(['restore', id, '-t', c.target, '--node', 'node\u001b[31mX']));
    assert.match(node, /unknown node 'node\\x1b\[31mX'/);

    const cmd = assertSafeLine(await c.cli(['bakup\u001b[2J']));
    assert.match(cmd, /unknown command 'bakup\\x1b\[2J'/);
  });

  test('a restore of a part that failed exits 1 and says so; it is never "ok"', async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 1, r.stderr);
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'partial');
    assert.equal(s.parts.find((p) => p.node === 'node1' && p.component === 'postgresql')?.status, 'failed');
    partialId = s.backupId;

    const restore = await c.cli(['restore', partialId, '-t', c.target, '--node', 'node1', '--component', 'postgresql']);
    assert.equal(restore.code, 1, restore.stdout + restore.stderr);
    assert.doesNotMatch(restore.stdout, /\bok\b/);
    assert.match(restore.stderr, /part node1\/postgresql failed during the backup .*nothing to restore/);
    assert.equal(restore.stderr.trim().split('\n').length, 1);

    // The part that did succeed still restores.
    const hap = await c.cli(['restore', partialId, '-t', c.target, '--node', 'node1', '--component', 'haproxy']);
    assert.equal(hap.code, 0, hap.stdout + hap.stderr);
  });
});

describe('pki/ is owner-only', () => {
  test('certs init and issue leave every file 0600 (ca.srl included) and the directory 0700', async () => {
    const { certsInit, certsIssue } = await import('../cli/certs.js');
    const { tempDir } = await import('./helpers/harness.js');
    const dir = path.join(tempDir('pki'), 'pki');
    await certsInit(dir);
    await certsIssue(dir, 'node1', 'agent', ['127.0.0.2']);
    await certsIssue(dir, 'operator', 'operator', []);
    const modes: string[] = [];
    for (const name of (await fsp.readdir(dir)).sort()) modes.push(`${name} ${((await fsp.stat(path.join(dir, name))).mode & 0o777).toString(8)}`);
    assert.ok(modes.includes('ca.srl 600'), modes.join(', '));
    assert.deepEqual(modes.filter((m) => !m.endsWith(' 600')), [], modes.join(', '));
    assert.equal((await fsp.stat(dir)).mode & 0o777, 0o700);
  });
});
