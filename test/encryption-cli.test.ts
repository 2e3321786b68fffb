/**
 * Encryption as an operator meets it, through the CLI, the coordinator and three agents with mTLS
 * (FORMAT.md "Format 4"): `keys init` writes owner-only files and refuses to overwrite an
 * identity; a set of a coordinator with backup_key_file is encrypted and `show` names its
 * recipients; `show --files` and `restore` without the identity, or with a stranger's, are one
 * line and write nothing; a passphrase-protected identity restores; a coordinator without a key
 * refuses to back up unless told `unencrypted: true`, and then `show` says so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Encrypter } from 'age-encryption';
import { DemoCluster } from '../demo/cluster.js';
import { dropCluster, startCluster, tempDir } from './helpers/harness.js';

async function fingerprint(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p);
    const rel = path.relative(root, p) || '.';
    if (st.isDirectory()) for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    else if (st.isFile()) out.set(rel, `${(st.mode & 0o7777).toString(8)} ${st.uid} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`);
  };
  await walk(root);
  return out;
}

const oneLine = (stderr: string) => {
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  return lines[0]!;
};

describe('encryption through the CLI', () => {
  let c: DemoCluster;
  before(async () => {
    c = await startCluster({ nodes: 2, groups: [['haproxy'], ['grafana']], encrypted: true });
  });
  after(async () => {
    await dropCluster(c);
  });

  test('keys init: identity and backup key owner-only; a second init on the same directory is refused, --identity rotates', async () => {
    const dir = path.join(tempDir('keys'), 'k');
    let r = await c.cli(['--json', 'keys', 'init', '--dir', dir, '--recipient', 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p']);
    assert.equal(r.code, 0, r.stderr);
    const made = DemoCluster.result<{ recipients: string[]; keyId: string }>(r.stdout);
    assert.equal(made.recipients.length, 2);
    for (const f of ['identity.txt', 'backup-key.json']) assert.equal((await fsp.stat(path.join(dir, f))).mode & 0o777, 0o600, f);
    assert.equal((await fsp.stat(dir)).mode & 0o777, 0o700);
    const identity = await fsp.readFile(path.join(dir, 'identity.txt'), 'utf8');
    assert.match(identity, /^AGE-SECRET-KEY-1[0-9A-Z]+$/m);
    assert.ok(identity.includes(`# lsbackup key id: ${made.keyId}`));
    assert.ok(!(await fsp.readFile(path.join(dir, 'backup-key.json'), 'utf8')).includes('AGE-SECRET-KEY'), 'the backup key holds no identity');
    r = await c.cli(['keys', 'init', '--dir', dir]);
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /identity\.txt exists already: pass --identity/);
    r = await c.cli(['--json', 'keys', 'init', '--dir', dir, '--identity', path.join(dir, 'identity.txt')]);
    assert.equal(r.code, 0, r.stderr);
    const rotated = DemoCluster.result<{ keyId: string }>(r.stdout);
    assert.notEqual(rotated.keyId, made.keyId);
    const both = await fsp.readFile(path.join(dir, 'identity.txt'), 'utf8');
    assert.ok(both.includes(made.keyId) && both.includes(rotated.keyId), 'the identity vouches for the old key and the new one');
    r = await c.cli(['keys', 'init', '--dir', path.join(dir, 'x'), '--recipient', 'age1notarecipient']);
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /'age1notarecipient' is not an age X25519 recipient/);
  });

  test('an encrypted set: show names the recipients; files and restore need the identity; a wrong one writes nothing; a passphrase-protected one restores', async () => {
    let r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const id = r.stdout.trim().split('\n').at(-1)!;
    r = await c.cli(['show', id, '-t', c.target]);
    assert.match(r.stdout, /^encrypted to age1[0-9a-z]+ \(key [0-9a-f]{64}\)/m, r.stdout);
    assert.match(r.stdout, /format lsbackup-set\/4/);

    const none = { LSBACKUP_IDENTITY_FILE: '' };
    r = await c.cli(['show', id, '-t', c.target, '--files'], none);
    assert.equal(r.code, 1, r.stdout);
    assert.match(oneLine(r.stderr), /is encrypted \(to age1.*\): pass --identity/);
    r = await c.cli(['show', id, '-t', c.target, '--files', '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /haproxy\.cfg/);

    const n1 = c.nodes[0]!;
    const etc = path.join(n1.root, 'etc/haproxy');
    const good = await fingerprint(etc);
    await fsp.writeFile(path.join(etc, 'haproxy.cfg'), 'broken\n');
    const broken = await fingerprint(etc);
    const stranger = path.join(tempDir('stranger'), 'id.txt');
    r = await c.cli(['keys', 'init', '--dir', path.dirname(stranger)]);
    assert.equal(r.code, 0, r.stderr);
    for (const [env, args, why] of [
      [none, [], /pass --identity/],
      [{}, ['--identity', path.join(path.dirname(stranger), 'identity.txt')], /does not name|not encrypted to this identity/],
      [{}, ['--identity', '/nonexistent/identity.txt'], /identity file \/nonexistent\/identity\.txt cannot be read/],
    ] as const) {
      r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', ...args], env);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(oneLine(r.stderr), why);
      assert.deepEqual(await fingerprint(etc), broken, 'a refused restore writes nothing');
    }

    // The identity under a passphrase, as `age -p` writes it.
    const protectedFile = path.join(tempDir('protected'), 'identity.txt.age');
    const e = new Encrypter();
    e.setPassphrase('correct horse battery staple');
    await fsp.writeFile(protectedFile, await e.encrypt(await fsp.readFile(c.identityFile, 'utf8')), { mode: 0o600 });
    r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--identity', protectedFile], { LSBACKUP_IDENTITY_PASSPHRASE: 'wrong' });
    assert.equal(r.code, 2);
    assert.match(oneLine(r.stderr), /does not open with that passphrase/);
    r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--identity', protectedFile], { LSBACKUP_IDENTITY_PASSPHRASE: 'correct horse battery staple' });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(await fingerprint(etc), good);
  });

  test('without a backup key: refused unless unencrypted: true, and then show says unencrypted', async () => {
    const cfg = YAML.parse(await fsp.readFile(c.coordinatorConfigFile, 'utf8')) as Record<string, unknown>;
    const { backup_key_file: _key, ...without } = cfg;
    const restart = async (body: Record<string, unknown>) => {
      await fsp.writeFile(c.coordinatorConfigFile, YAML.stringify(body));
      c.coordinator!.kill('SIGTERM');
      await new Promise((r) => c.coordinator!.once('exit', r));
      await c.startCoordinator();
    };
    await restart(without);
    let r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.notEqual(r.code, 0);
    assert.match(oneLine(r.stderr), /the coordinator has no backup_key_file: make one with 'lsbackup keys init/);
    await restart({ ...without, unencrypted: true });
    r = await c.cli(['backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim().split('\n').at(-1)!;
    r = await c.cli(['show', id, '-t', c.target]);
    assert.match(r.stdout, /^unencrypted: anyone who can read the target can read this set$/m);
    assert.match(r.stdout, /format lsbackup-set\/3/);
    await restart(cfg);
  });
});
