import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { haproxy, haproxySchema } from '../agent/components/haproxy.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';

async function tree(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (p: string) => {
    const st = await fsp.lstat(p, { bigint: true });
    const rel = path.relative(root, p) || '.';
    if (st.isSymbolicLink()) out[rel] = `link ${await fsp.readlink(p)} ${st.uid}:${st.gid}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs}`;
      for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    } else out[rel] = `file ${(Number(st.mode) & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.mtimeMs} ${(await fsp.readFile(p)).toString('base64')}`;
  };
  await walk(root);
  return out;
}

test('haproxy files round-trip with modes, owners, mtimes and symlinks; invalid config refused', async () => {
  const root = tempDir('haproxy');
  const etc = path.join(root, 'etc/haproxy');
  const ssl = path.join(root, 'etc/ssl/haproxy');
  await fsp.mkdir(etc, { recursive: true });
  await fsp.mkdir(ssl, { recursive: true });
  await fsp.writeFile(path.join(etc, 'haproxy.cfg'), 'global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 5s\n  timeout server 5s\nfrontend fe\n  bind 127.0.0.1:18080\n  default_backend be\nbackend be\n  server s1 127.0.0.1:18081\n');
  await fsp.writeFile(path.join(ssl, 'site.pem'), 'PRIVATE KEY DATA\n', { mode: 0o600 });
  await fsp.chown(path.join(ssl, 'site.pem'), 1234, 4321);
  await fsp.symlink('site.pem', path.join(ssl, 'current.pem'));
  await fsp.utimes(path.join(etc, 'haproxy.cfg'), 1_600_000_000.123, 1_600_000_000.123);
  const before = await tree(path.join(root, 'etc'));

  const comp = haproxy(haproxySchema.parse({ paths: [etc, ssl], config_file: path.join(etc, 'haproxy.cfg') }));
  const rt = runtimeOf([comp]);
  const target = tempDir('target');
  const { id, manifest } = await backupLocal(rt, target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const st = await fsp.stat(path.join(target, id, 'node1/haproxy/files.tree.jsonl.gz'));
  assert.equal(st.mode & 0o777, 0o600);

  await fsp.rm(path.join(ssl, 'site.pem'));
  await fsp.writeFile(path.join(etc, 'haproxy.cfg'), 'broken');
  const r = await restoreLocal(rt, target, id);
  assert.deepEqual(r.results.map((x) => x.status), ['ok'], JSON.stringify(r.results));
  assert.deepEqual(await tree(path.join(root, 'etc')), before);
});

test('a backed-up haproxy config that haproxy -c rejects is never put in place', async () => {
  const root = tempDir('haproxy-bad');
  const etc = path.join(root, 'etc/haproxy');
  await fsp.mkdir(etc, { recursive: true });
  const cfgFile = path.join(etc, 'haproxy.cfg');
  await fsp.writeFile(cfgFile, 'global\n  this-is-not-a-keyword 1\n');
  const comp = haproxy(haproxySchema.parse({ paths: [etc], config_file: cfgFile }));
  const rt = runtimeOf([comp]);
  const target = tempDir('target');
  const { id } = await backupLocal(rt, target);
  const live = 'global\n  maxconn 10\n';
  await fsp.writeFile(cfgFile, live);
  const r = await restoreLocal(rt, target, id);
  assert.equal(r.results[0]?.status, 'failed');
  assert.match(r.results[0]!.reason, /does not pass 'haproxy -c -f'.*unknown keyword 'this-is-not-a-keyword'.*nothing was replaced/);
  assert.equal(await fsp.readFile(cfgFile, 'utf8'), live);
  assert.deepEqual(await fsp.readdir(etc), ['haproxy.cfg'], 'no staged files left behind');
});

test('a file the node has replaced by a directory comes back a file; the directory goes to the rollback copy', async () => {
  const root = path.join(tempDir('file-to-dir'), 'etc/app');
  await fsp.mkdir(root, { recursive: true });
  await fsp.writeFile(path.join(root, 'x.conf'), 'the file\n');
  await fsp.writeFile(path.join(root, 'y.conf'), 'other\n');
  const { filesComponent } = await import('../agent/components/files.js');
  const rt = runtimeOf([filesComponent('kibana', [root])]);
  const target = tempDir('file-to-dir-target');
  const { id } = await backupLocal(rt, target);
  await fsp.rm(path.join(root, 'x.conf'));
  await fsp.mkdir(path.join(root, 'x.conf'));
  await fsp.writeFile(path.join(root, 'x.conf/inside'), 'was a directory\n');
  const r = await restoreLocal(rt, target, id);
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal(await fsp.readFile(path.join(root, 'x.conf'), 'utf8'), 'the file\n');
  const rollback = r.results[0]!.meta.rollback!;
  assert.equal(await fsp.readFile(path.join(rollback, root, 'x.conf/inside'), 'utf8'), 'was a directory\n');
});
