/**
 * Who may talk to whom (mTLS with roles), and what a restore may write (nothing outside the
 * component's paths, whatever the set says).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import YAML from 'yaml';
import { DemoCluster, bin, freePort } from '../demo/cluster.js';
import { certsInit, certsIssue } from '../cli/certs.js';
import { channelOptionsFor, proto } from '../common/proto.js';
import { filesComponent } from '../agent/components/files.js';
import { sha256File } from '../common/hash.js';
import { FORMAT_1, MANIFEST, sealManifest, type Manifest } from '../common/manifest.js';
import { backupLocal, dropCluster, restoreLocal, runtimeOf, startCluster, tempDir } from './helpers/harness.js';

function callInfo(client: InstanceType<typeof proto.Agent>): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => client.Info({ target: '' }, { deadline: Date.now() + 5_000 }, (err) => resolve(err)));
}

describe('mTLS', () => {
  let c: DemoCluster;
  let foreign = '';
  before(async () => {
    c = await startCluster({ nodes: 1, groups: [['haproxy']] }, async (made) => {
      foreign = path.join(made.root, 'foreign-pki');
      await certsInit(foreign);
      await certsIssue(foreign, 'operator', 'operator', []);
    });
  });
  after(async () => {
    await dropCluster(c);
  });

  const pki = (name: string) => path.join(c.pki, name);

  test('the CLI with an operator certificate from another CA is refused', async () => {
    const cfg = path.join(c.root, 'foreign-cli.yaml');
    await fsp.writeFile(cfg, YAML.stringify({ coordinator: `127.0.0.1:${c.coordinatorPort}`, tls: { ca: pki('ca.crt'), cert: path.join(foreign, 'operator.crt'), key: path.join(foreign, 'operator.key') } }));
    const r = await c.cli(['list', '-t', c.target], { LSBACKUP_CONFIG: cfg });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /coordinator unreachable/);
  });

  test('a client without a certificate is refused by the coordinator and by an agent', async () => {
    const noCert = grpc.credentials.createSsl(readFileSync(pki('ca.crt')));
    const agent = c.nodes[0]!;
    const a = new proto.Agent(`${agent.ip}:${agent.port}`, noCert, channelOptionsFor(agent.ip, agent.name));
    const err = await callInfo(a);
    a.close();
    assert.equal(err?.code, grpc.status.UNAVAILABLE, String(err));
    const coord = new proto.Coordinator(`127.0.0.1:${c.coordinatorPort}`, noCert, channelOptionsFor('127.0.0.1', 'coordinator'));
    const err2 = await new Promise<grpc.ServiceError | null>((resolve) => coord.List({ target: c.target }, { deadline: Date.now() + 5_000 }, (e) => resolve(e)));
    coord.close();
    assert.equal(err2?.code, grpc.status.UNAVAILABLE);
  });

  test('agents accept only the coordinator role; the coordinator only operators', async () => {
    const as = (name: string) => grpc.credentials.createSsl(readFileSync(pki('ca.crt')), readFileSync(pki(`${name}.key`)), readFileSync(pki(`${name}.crt`)));
    const agent = c.nodes[0]!;
    const asOperator = new proto.Agent(`${agent.ip}:${agent.port}`, as('operator'), channelOptionsFor(agent.ip, agent.name));
    const denied = await callInfo(asOperator);
    // Release deletes data outside the set (an Elasticsearch snapshot): only the coordinator may ask.
    const releaseDenied = await new Promise<grpc.ServiceError | null>((resolve) =>
      asOperator.Release({ backupId: '20261127T131500Z', target: c.target, node: agent.name, component: 'haproxy', meta: {} }, { deadline: Date.now() + 5_000 }, (e) => resolve(e)),
    );
    asOperator.close();
    for (const err of [denied, releaseDenied]) {
      assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
      assert.match(err!.details, /caller certificate 'operator' with role 'operator' may not call this service \(allowed: coordinator\)/);
    }

    const asCoordinator = new proto.Agent(`${agent.ip}:${agent.port}`, as('coordinator'), channelOptionsFor(agent.ip, agent.name));
    assert.equal(await callInfo(asCoordinator), null);
    asCoordinator.close();

    const agentToCoordinator = new proto.Coordinator(`127.0.0.1:${c.coordinatorPort}`, as(agent.name), channelOptionsFor('127.0.0.1', 'coordinator'));
    const err = await new Promise<grpc.ServiceError | null>((resolve) => agentToCoordinator.List({ target: c.target }, (e) => resolve(e)));
    agentToCoordinator.close();
    assert.equal(err?.code, grpc.status.PERMISSION_DENIED);
  });

  test('--insecure is explicit and warns at every start', async () => {
    const port = await freePort();
    const cfg = path.join(c.root, 'insecure-agent.yaml');
    await fsp.writeFile(cfg, YAML.stringify({ node: 'x', listen: `127.0.0.1:${port}`, state_dir: path.join(c.root, 'insecure-state'), components: {} }));
    const noTls = spawnOutput([bin.agent, '--config', cfg]);
    assert.match(await noTls, /no tls section in the config: give ca, cert and key, or start with --insecure/);
    const out = await spawnOutput([bin.agent, '--config', cfg, '--insecure'], 'listening on');
    assert.match(out, /running WITHOUT TLS \(--insecure\)/);
  });
});

/** Runs a daemon until it prints `until` (then stops it) or exits; returns what it printed. */
function spawnOutput(args: string[], until?: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args);
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (until && out.includes(until)) child.kill('SIGTERM');
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', () => resolve(out));
  });
}

describe('restore confinement (zip slip)', () => {
  let root = '';
  let outside = '';
  let target = '';
  let id = '';
  let rt: ReturnType<typeof runtimeOf>;
  let app = '';

  before(async () => {
    root = tempDir('confine');
    app = path.join(root, 'etc/app');
    outside = path.join(root, 'outside');
    await fsp.mkdir(app, { recursive: true });
    await fsp.mkdir(outside);
    await fsp.writeFile(path.join(app, 'app.conf'), 'good\n');
    target = tempDir('confine-target');
    rt = runtimeOf([filesComponent('haproxy', [app])]);
    ({ id } = await backupLocal(rt, target, [], { format: 2 }));
  });
  after(async () => {
    await fsp.rm(root, { recursive: true, force: true });
    await fsp.rm(target, { recursive: true, force: true });
  });

  /**
   * Replaces the set's tree with a format-1 zip python writes (archiver would sanitise the names)
   * and turns the manifest into format 1 with the edited entries (resealed): format-1 sets stay
   * readable, so their confinement must hold as before. The tar path of format 2 is tested below.
   */
  async function craft(entries: Record<string, string>, editManifest: (m: Manifest) => void): Promise<void> {
    const zip = path.join(target, id, 'node1/haproxy/files.zip');
    const py = `import zipfile,sys,json\nz=zipfile.ZipFile(sys.argv[1],'w')\nfor k,v in json.loads(sys.argv[2]).items():\n  z.writestr(zipfile.ZipInfo(k),v)\nz.close()`;
    execFileSync('python3', ['-c', py, zip, JSON.stringify(entries)]);
    const mf = path.join(target, id, MANIFEST);
    const m = JSON.parse(await fsp.readFile(mf, 'utf8')) as Manifest;
    const { sha256, size } = await sha256File(zip);
    const p = m.parts[0]! as Partial<Manifest['parts'][0]>;
    Object.assign(m, { format: FORMAT_1 });
    p.artifacts = [{ path: 'node1/haproxy/files.zip', kind: 'zip', sha256, size, mode: 0o100600 }];
    delete p.record;
    delete p.entryCount;
    editManifest(m);
    // Resealed: confinement must hold even against someone who can write a consistent manifest.
    await fsp.writeFile(mf, JSON.stringify(sealManifest(m)));
  }

  async function assertRefused(pattern: RegExp): Promise<void> {
    const before = await fsp.readFile(path.join(app, 'app.conf'), 'utf8');
    const r = await restoreLocal(rt, target, id);
    assert.equal(r.results[0]?.status, 'failed', JSON.stringify(r.results));
    assert.match(r.results[0]!.reason, pattern);
    assert.deepEqual(await fsp.readdir(outside), [], 'nothing written outside');
    assert.equal(await fsp.readFile(path.join(app, 'app.conf'), 'utf8'), before, 'nothing replaced inside either');
    assert.deepEqual((await fsp.readdir(app)).filter((n) => n.includes('lsbackup-restore')), [], 'no temp files left');
  }

  const fileEntry = (p: string, name = p.slice(1)) => ({ archive: 'node1/haproxy/files.zip', name, path: p, type: 'file' as const, size: 4, sha256: '', mode: 0o100644, uid: 0, gid: 0, mtimeNs: '0', linkTarget: '' });

  test("format 2: a tar entry '../' its entries file does not list is refused, nothing written", async () => {
    // A consistent, resealed set whose tar holds one more entry than its entries file: python's tarfile writes the name as given.
    const dir = path.join(target, id);
    const tarFile = path.join(dir, 'node1/haproxy/files.tar.gz');
    const listFile = path.join(dir, 'node1/haproxy/entries.jsonl.gz');
    const [tarBefore, listBefore, manifestBefore] = await Promise.all([fsp.readFile(tarFile), fsp.readFile(listFile), fsp.readFile(path.join(dir, MANIFEST), 'utf8')]);
    const good = { ...fileEntry(`${app}/app.conf`), archive: 'node1/haproxy/files.tar.gz', sha256: createHash('sha256').update('evil').digest('hex') };
    const py = `import tarfile,io,sys,json\nt=tarfile.open(sys.argv[1],'w:gz')\nfor k,v in json.loads(sys.argv[2]).items():\n  i=tarfile.TarInfo(k); d=v.encode(); i.size=len(d); t.addfile(i,io.BytesIO(d))\nt.close()`;
    execFileSync('python3', ['-c', py, tarFile, JSON.stringify({ [good.name]: 'evil', [`${app.slice(1)}/../../outside/x`]: 'evil' })]);
    await fsp.writeFile(listFile, gzipSync(JSON.stringify(good) + '\n'));
    const m = JSON.parse(manifestBefore) as Manifest;
    for (const a of m.parts[0]!.artifacts) Object.assign(a, await sha256File(path.join(dir, a.path)));
    m.parts[0]!.entryCount = 1;
    await fsp.writeFile(path.join(dir, MANIFEST), JSON.stringify(sealManifest(m)));
    try {
      await assertRefused(/archive files\.tar\.gz holds '.*\.\.\/\.\.\/outside\/x' where its entries list nothing more/);
    } finally {
      await Promise.all([fsp.writeFile(tarFile, tarBefore), fsp.writeFile(listFile, listBefore), fsp.writeFile(path.join(dir, MANIFEST), manifestBefore)]);
    }
  });

  test("an archive entry '../' the manifest does not list is refused", async () => {
    await craft({ [`${app.slice(1)}/app.conf`]: 'evil', [`${app.slice(1)}/../../outside/x`]: 'evil' }, (m) => {
      m.parts[0]!.entries = [fileEntry(`${app}/app.conf`)];
    });
    await assertRefused(/holds '.*\.\.\/\.\.\/outside\/x', which its manifest does not list/);
  });

  test('a manifest entry with .. or outside the declared paths is refused before anything is written', async () => {
    await craft({ [`${app.slice(1)}/../../outside/x`]: 'evil' }, (m) => {
      m.parts[0]!.entries = [fileEntry(`${app}/../../outside/x`)];
    });
    await assertRefused(/not a plain absolute path/);
    await craft({ [`${outside.slice(1)}/x`]: 'evil' }, (m) => {
      m.parts[0]!.entries = [fileEntry(`${outside}/x`)];
    });
    await assertRefused(/outside the component's paths/);
  });

  test('an absolute archive entry name is refused', async () => {
    await craft({ [`${outside}/abs`]: 'evil' }, (m) => {
      m.parts[0]!.entries = [fileEntry(`${outside}/abs`, `${outside}/abs`)];
    });
    await assertRefused(/refusing entry/);
  });

  test('a symlink entry pointing out, or a planted symlinked directory, is refused', async () => {
    await craft({ [`${app.slice(1)}/link`]: outside }, (m) => {
      m.parts[0]!.entries = [{ ...fileEntry(`${app}/link`), type: 'symlink', linkTarget: outside }];
    });
    await assertRefused(/refusing symlink .* points outside/);

    // The node itself has a directory inside the paths that is a symlink leading out.
    await fsp.symlink(outside, path.join(app, 'sub'));
    await craft({ [`${app.slice(1)}/sub/x`]: 'evil' }, (m) => {
      m.parts[0]!.entries = [{ ...fileEntry(`${app}/sub/x`), sha256: '0'.repeat(64) }];
    });
    await assertRefused(/refusing to write .*sub\/x: it resolves to .*outside\/x/);
    await fsp.rm(path.join(app, 'sub'));
  });
});
