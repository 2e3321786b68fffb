import { testKeys } from './helpers/test-keys.js';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { existsSync, promises as fsp } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { elasticsearch, elasticsearchSchema, snapshotNameOf } from '../agent/components/elasticsearch/index.js';
import { certificateProblem, nodeUrlOf } from '../agent/components/elasticsearch/lambdastack.js';
import { createComponents } from '../agent/components/index.js';
import { duBytes, mkdirPrivate } from '../common/fsutil.js';
import { commitSet } from '../common/commit.js';
import { FORMAT, newSetId, setDir } from '../common/manifest.js';
import { kibana, kibanaSchema } from '../agent/components/kibana.js';
import { backupNode, releasePart, type AgentRuntime } from '../agent/runner.js';
import { backupLocal, partsFromAnswers, restoreLocal, runtimeOf, tempDir, withEntries, type ManifestWithEntries } from './helpers/harness.js';
import { FakeEs, makePki, type Pki } from './helpers/es-server.js';
import { whileDown } from './helpers/ops.js';

const PASSWORD = 's3cret pw';
let pki: Pki;
const servers: FakeEs[] = [];

before(() => {
  pki = makePki(tempDir('es-pki'));
});

after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

interface Cluster {
  es: FakeEs;
  dir: string;
  target: string;
  yml: string;
  passwordFile: string;
  config: (extra?: Record<string, unknown>) => ReturnType<typeof elasticsearchSchema.parse>;
}

/** A node with its own elasticsearch.yml; path.repo covers the backup target unless told otherwise. */
async function cluster(opts: { target?: string; pathRepo?: boolean; securityPlugin?: boolean; restartFlag?: boolean } = {}): Promise<Cluster> {
  const dir = tempDir('es');
  const target = opts.target ?? path.join(dir, 'target');
  await fsp.mkdir(target, { recursive: true });
  const yml = path.join(dir, 'elasticsearch.yml');
  const repoLine = opts.pathRepo === false ? '' : `path.repo: ["${target}"]\n`;
  await fsp.writeFile(yml, `# node settings kept by hand\ncluster.name: lsbackup-test\npath:\n  data: /var/lib/elasticsearch\n${repoLine}`);
  await fsp.chmod(yml, 0o660);
  const passwordFile = path.join(dir, 'password');
  await fsp.writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const restartFlag = opts.restartFlag ? path.join(dir, 'restart-requested') : undefined;
  const es = await FakeEs.start({ configFile: yml, pki, users: { admin: PASSWORD }, securityPlugin: opts.securityPlugin, restartFlag });
  servers.push(es);
  const config = (extra: Record<string, unknown> = {}) =>
    elasticsearchSchema.parse({ url: es.url, ca_file: pki.caFile, username: 'admin', password_file: passwordFile, config_file: yml, security_plugin: false, ...extra });
  return { es, dir, target, yml, passwordFile, config };
}

async function seed(es: FakeEs): Promise<void> {
  const ok = (r: { status: number; body: unknown }) => assert.ok(r.status < 300, JSON.stringify(r.body));
  ok(await es.api('PUT', '/logs-1', { settings: { number_of_shards: 2 }, aliases: { logs: {} } }));
  for (let i = 0; i < 25; i++) ok(await es.api('POST', '/logs-1/_doc', { message: `line ${i}`, level: i % 3 ? 'info' : 'warn' }));
  ok(await es.api('PUT', '/metrics'));
  for (let i = 0; i < 3; i++) ok(await es.api('PUT', `/metrics/_doc/m${i}`, { cpu: i * 10 }));
  ok(await es.api('PUT', '/.kibana_1'));
  ok(await es.api('PUT', '/.kibana_1/_doc/config', { type: 'config', buildNum: 1 }));
}

async function docs(es: FakeEs, index: string): Promise<[string, unknown][]> {
  const r = await es.api('GET', `/${index}/_search?size=10000`);
  assert.equal(r.status, 200, `${index}: ${JSON.stringify(r.body)}`);
  return (r.body.hits.hits as { _id: string; _source: unknown }[]).map((h): [string, unknown] => [h._id, h._source]).sort(([a], [b]) => a.localeCompare(b));
}

function deletesSince(es: FakeEs, from: number): string[] {
  return es.requests.slice(from).filter((r) => r.method === 'DELETE').map((r) => r.path);
}

async function snapshotNames(es: FakeEs): Promise<string[]> {
  const r = await es.api('GET', '/_snapshot/lsbackup/_all');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (r.body.snapshots as { snapshot: string }[]).map((s) => s.snapshot).sort();
}

function release(rt: ReturnType<typeof runtimeOf>, target: string, id: string, meta: Record<string, string>, component = 'elasticsearch') {
  return releasePart(rt, { backupId: id, target, node: rt.node, component, meta }, new AbortController().signal);
}

test('snapshot and restore: deleted index comes back; existing indices need rename_suffix or close_existing; never deletes', async () => {
  const c = await cluster();
  await seed(c.es);
  const rt = runtimeOf([elasticsearch(c.config())]);
  const { id, manifest } = await backupLocal(rt, c.target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = manifest.parts[0]!;
  const location = path.join(c.target, '_elasticsearch');
  assert.equal(part.meta.snapshot, `lsbackup-${id.toLowerCase()}`);
  assert.equal(part.meta.repository, 'lsbackup');
  assert.equal(part.meta.location, location);
  assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['files.tree.jsonl.gz', 'snapshot.json']);
  assert.ok(part.entries.some((e) => e.path === c.yml), 'elasticsearch.yml is in files.tar.gz');
  assert.ok(!JSON.stringify(manifest).includes(PASSWORD), 'the password is nowhere in the manifest');
  const record = JSON.parse(await fsp.readFile(path.join(c.target, id, 'node1/elasticsearch/snapshot.json'), 'utf8'));
  assert.equal(record.state, 'SUCCESS');
  assert.deepEqual(record.indices, ['.kibana_1', 'logs-1', 'metrics']);
  // The snapshot's data is in the repository on the shared location, not in the set.
  assert.ok(existsSync(path.join(location, 'index.latest')));
  assert.ok(existsSync(path.join(location, `snap-${record.uuid}.dat`)));

  const logsBefore = await docs(c.es, 'logs-1');
  const metricsBefore = await docs(c.es, 'metrics');
  assert.equal(logsBefore.length, 25);
  assert.equal((await c.es.api('DELETE', '/logs-1')).status, 200);
  assert.equal((await c.es.api('POST', '/metrics/_doc', { cpu: 99, late: true })).status, 201);

  let mark = c.es.requests.length;
  let r = await restoreLocal(rt, c.target, id);
  assert.equal(r.results[0]!.status, 'failed');
  assert.match(r.results[0]!.reason, /existing indices metrics\b/);
  assert.match(r.results[0]!.reason, /rename_suffix/);
  assert.match(r.results[0]!.reason, /close_existing=true/);
  assert.equal((await c.es.api('GET', '/logs-1')).status, 404, 'a refused restore restores nothing');
  assert.equal((await docs(c.es, 'metrics')).length, 4);

  r = await restoreLocal(rt, c.target, id, { dryRun: true, options: { indices: 'logs-1' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal((await c.es.api('GET', '/logs-1')).status, 404, 'a dry run restores nothing');

  r = await restoreLocal(rt, c.target, id, { options: { indices: 'logs-1' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.deepEqual(await docs(c.es, 'logs-1'), logsBefore);
  assert.deepEqual((await c.es.api('GET', '/logs-1')).body['logs-1'].aliases, { logs: {} });

  r = await restoreLocal(rt, c.target, id, { options: { rename_suffix: '-restored' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.deepEqual(await docs(c.es, 'logs-1-restored'), logsBefore);
  assert.deepEqual(await docs(c.es, 'metrics-restored'), metricsBefore);
  assert.equal((await docs(c.es, 'metrics')).length, 4, 'the original stays as it was');
  assert.deepEqual((await c.es.api('GET', '/logs-1-restored')).body['logs-1-restored'].aliases, {}, 'a renamed copy does not take the aliases');
  assert.equal((await c.es.api('GET', '/.kibana_1-restored')).status, 404, 'system indices are left out by default');

  r = await restoreLocal(rt, c.target, id, { options: { rename_suffix: '-restored' } });
  assert.equal(r.results[0]!.status, 'failed');
  assert.match(r.results[0]!.reason, /logs-1-restored, metrics-restored exist already/);

  r = await restoreLocal(rt, c.target, id, { options: { indices: 'metrics', close_existing: 'true' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.deepEqual(await docs(c.es, 'metrics'), metricsBefore);
  const cat = (await c.es.api('GET', '/_cat/indices?format=json')).body as { index: string; status: string; health: string }[];
  assert.deepEqual(cat.find((x) => x.index === 'metrics'), { ...cat.find((x) => x.index === 'metrics'), status: 'open', health: 'green' });

  // Node config files come back only when asked for.
  const ymlBefore = await fsp.readFile(c.yml, 'utf8');
  await fsp.appendFile(c.yml, 'node.attr.rack: r9\n');
  r = await restoreLocal(rt, c.target, id, { options: { indices: '-metrics', rename_suffix: '-cfg' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal((await c.es.api('GET', '/logs-1-cfg')).status, 200, 'a leading exclusion starts from the default set');
  assert.equal((await c.es.api('GET', '/metrics-cfg')).status, 404);
  assert.match(await fsp.readFile(c.yml, 'utf8'), /rack: r9/);
  r = await restoreLocal(rt, c.target, id, { options: { indices: 'logs-1', rename_suffix: '-cfg2', elasticsearch_config: 'true' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal(await fsp.readFile(c.yml, 'utf8'), ymlBefore);

  r = await restoreLocal(rt, c.target, id, { options: { indices: 'nosuch' } });
  assert.match(r.results[0]!.reason, /index 'nosuch' is not in snapshot/);
  assert.deepEqual(deletesSince(c.es, mark), [], 'restore never deletes anything');

  // A second set takes its own snapshot into the same repository.
  mark = c.es.requests.length;
  const second = await backupLocal(rt, c.target);
  assert.equal(second.manifest.status, 'complete', second.manifest.reasons.join('; '));
  assert.notEqual(second.manifest.parts[0]!.meta.snapshot, part.meta.snapshot);
  const all = await c.es.api('GET', '/_snapshot/lsbackup/_all');
  assert.deepEqual(all.body.snapshots.map((s: { snapshot: string }) => s.snapshot).sort(), [part.meta.snapshot, second.manifest.parts[0]!.meta.snapshot].sort());
});

test('a PARTIAL snapshot fails the part, naming the index, the shard and the reason', async () => {
  const c = await cluster();
  await seed(c.es);
  c.es.failShardOnSnapshot('logs-1', 1, 'IndexShardSnapshotFailedException[java.io.IOException: No space left on device]');
  const rt = runtimeOf([elasticsearch(c.config())]);
  const { manifest } = await backupLocal(rt, c.target);
  assert.equal(manifest.status, 'failed');
  const part = manifest.parts[0]!;
  assert.equal(part.status, 'failed');
  assert.match(part.reason, /ended PARTIAL/);
  assert.match(part.reason, /index logs-1 shard 1 on node \S+: IndexShardSnapshotFailedException\[java.io.IOException: No space left on device\]/);
  assert.match(part.reason, /1 of 4 shards failed/);
  assert.deepEqual(part.artifacts, []);
  // The PARTIAL snapshot stays for inspection, and the failed part names it so that removing the set deletes it.
  assert.equal(part.meta.snapshot, snapshotNameOf(manifest.id));
  assert.deepEqual(await snapshotNames(c.es), [part.meta.snapshot]);
  assert.equal((await release(rt, c.target, manifest.id, part.meta)).released, true);
  assert.deepEqual(await snapshotNames(c.es), []);
});

test("release deletes a set's snapshot through the API, keeps the others, counts a missing one as released, and says why it could not", async () => {
  const c = await cluster();
  await seed(c.es);
  const rt = runtimeOf([elasticsearch(c.config())]);
  const first = await backupLocal(rt, c.target);
  const second = await backupLocal(rt, c.target);
  const [a, b] = [first.manifest.parts[0]!.meta, second.manifest.parts[0]!.meta];
  assert.deepEqual(await snapshotNames(c.es), [a.snapshot!, b.snapshot!].sort());
  const location = path.join(c.target, '_elasticsearch');
  const bytesBefore = await duBytes([location]);

  const mark = c.es.requests.length;
  assert.deepEqual(await release(rt, c.target, first.id, a), { released: true, message: `deleted snapshot ${a.snapshot} from repository lsbackup` });
  assert.deepEqual(deletesSince(c.es, mark), [`/_snapshot/lsbackup/${a.snapshot}`], 'one DELETE through the snapshot API');
  assert.deepEqual(await snapshotNames(c.es), [b.snapshot!]);
  assert.ok(!existsSync(path.join(location, `snap-${a.snapshot_uuid}.dat`)), 'its files left the repository');
  assert.ok(await duBytes([location]) < bytesBefore);
  await c.es.api('DELETE', '/logs-1');
  const r = await restoreLocal(rt, c.target, second.id, { options: { indices: 'logs-1' } });
  assert.equal(r.results[0]!.status, 'ok', `the other set's snapshot still restores: ${r.results[0]!.reason}`);

  assert.deepEqual(await release(rt, c.target, first.id, a), { released: true, message: `snapshot ${a.snapshot} was already gone from repository lsbackup` });

  for (const snapshot of ['*', 'lsbackup-*', `${b.snapshot},${a.snapshot}`, '']) {
    const refused = await release(rt, c.target, first.id, { ...a, snapshot });
    assert.equal(refused.released, false);
    assert.match(refused.message, /names no single snapshot/);
  }
  assert.deepEqual(await snapshotNames(c.es), [b.snapshot!], 'nothing else was deleted');

  const down = await whileDown(() => c.es.pause(), () => c.es.resume(), () => release(rt, c.target, second.id, b));
  assert.equal(down.released, false);
  assert.match(down.message, /^nothing answers at https:\/\/localhost:\d+ \(connection refused/);
  assert.deepEqual(await snapshotNames(c.es), [b.snapshot!], 'kept while the cluster was down');

  await assert.rejects(release(rt, c.target, second.id, b, 'kibana'), /component 'kibana' is not configured on node node1/);
  const readonly = runtimeOf([elasticsearch(c.config({ readonly: true }))]);
  assert.match((await release(readonly, c.target, second.id, b)).message, /configured readonly on this node: it cannot delete snapshot/);
});

test('encrypted (format 4): a deleted index comes back with the identity (the snapshot named in the sealed meta); release works from the clear outside-data key', async () => {
  const { key, identity } = await testKeys();
  const c = await cluster();
  await seed(c.es);
  const rt = runtimeOf([elasticsearch(c.config())]);
  const { id, manifest } = await backupLocal(rt, c.target, [], { key });
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = manifest.parts[0]!;
  assert.deepEqual(part.meta, {});
  assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['files.pieces.gz', 'files.tree.jsonl.gz.age', 'meta.json.age', 'snapshot.json.age']);
  const logsBefore = await docs(c.es, 'logs-1');
  assert.equal((await c.es.api('DELETE', '/logs-1')).status, 200);
  const r = await restoreLocal(rt, c.target, id, { identity, options: { indices: 'logs-1' } });
  assert.deepEqual(r.results.map((x) => [x.status, x.reason]), [['ok', '']]);
  assert.deepEqual(await docs(c.es, 'logs-1'), logsBefore);
  const snapshot = `lsbackup-${id.toLowerCase()}`;
  assert.ok((await snapshotNames(c.es)).includes(snapshot));
  const released = await releasePart(rt, { backupId: id, target: c.target, node: rt.node, component: 'elasticsearch', meta: part.meta, external: part.external![0]! }, new AbortController().signal);
  assert.deepEqual(released, { released: true, message: `deleted snapshot ${snapshot} from repository lsbackup` });
  assert.ok(!(await snapshotNames(c.es)).includes(snapshot));
});

test('path.repo: refused with the file and the path to add; added and reloaded when allowed', async () => {
  const c = await cluster({ pathRepo: false, restartFlag: true });
  await seed(c.es);
  const before = await fsp.readFile(c.yml, 'utf8');
  const location = path.join(c.target, '_elasticsearch');

  let rt = runtimeOf([elasticsearch(c.config())]);
  let { manifest } = await backupLocal(rt, c.target);
  const reason = manifest.parts[0]!.reason;
  assert.equal(manifest.parts[0]!.status, 'failed');
  assert.ok(reason.includes(c.yml), reason);
  assert.ok(reason.includes(`path.repo: ["${location}"]`), reason);
  assert.match(reason, /allow_config_edit/);
  assert.equal(await fsp.readFile(c.yml, 'utf8'), before, 'the file is left alone');
  assert.ok(!c.es.requests.some((r) => r.path.startsWith('/_snapshot')), 'nothing was registered');

  assert.throws(() => c.config({ allow_config_edit: true }), /reload_command/);
  const flag = path.join(c.dir, 'restart-requested');
  rt = runtimeOf([elasticsearch(c.config({ allow_config_edit: true, reload_command: ['touch', flag] }))]);
  ({ manifest } = await backupLocal(rt, c.target));
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.equal(c.es.restarts, 1, 'reload_command ran and the node re-read its settings');
  const after = await fsp.readFile(c.yml, 'utf8');
  assert.deepEqual(YAML.parse(after)['path.repo'], [location]);
  assert.match(after, /^# node settings kept by hand/, 'comments survive the edit');
  assert.equal((await fsp.stat(c.yml)).mode & 0o777, 0o660, 'the mode is kept');
});

test('TLS: a wrong CA fails with a certificate error and nothing is sent; http:// is refused', async () => {
  const c = await cluster();
  const other = makePki(tempDir('es-other-pki'));
  const rt = runtimeOf([elasticsearch(c.config({ ca_file: other.caFile }))]);
  const { manifest } = await backupLocal(rt, c.target);
  const reason = manifest.parts[0]!.reason;
  assert.equal(manifest.parts[0]!.status, 'failed');
  assert.match(reason, /TLS certificate check of localhost:\d+ failed/);
  assert.ok(reason.includes(other.caFile), reason);
  assert.equal(c.es.requests.length, 0, 'no request got through: there is no fallback without verification');
  assert.throws(() => elasticsearchSchema.parse({ url: c.es.url.replace('https:', 'http:'), ca_file: pki.caFile }), /https/);
  assert.throws(() => elasticsearchSchema.parse({ url: c.es.url.replace('https://', 'https://admin:pw@'), ca_file: pki.caFile }), /without credentials/);

  const wrongPassword = path.join(c.dir, 'wrong');
  await fsp.writeFile(wrongPassword, 'nope\n');
  const rt2 = runtimeOf([elasticsearch(c.config({ password_file: wrongPassword }))]);
  const r2 = await backupLocal(rt2, c.target);
  assert.match(r2.manifest.parts[0]!.reason, /HTTP 401 security_exception/);
  assert.ok(!r2.manifest.parts[0]!.reason.includes('nope'));
});

test('a damaged repository makes the restore fail, naming what is missing or unrecovered', async () => {
  const c = await cluster();
  await seed(c.es);
  const rt = runtimeOf([elasticsearch(c.config({ restore_timeout_seconds: 2 }))]);
  const { id, manifest } = await backupLocal(rt, c.target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const location = path.join(c.target, '_elasticsearch');
  await c.es.api('DELETE', '/logs-1');

  // Damage every data file of logs-1's shards: the node restores the index but cannot recover it.
  const repoData = JSON.parse(await fsp.readFile(path.join(location, `index-${(await fsp.readFile(path.join(location, 'index.latest'))).readBigInt64BE()}`), 'utf8'));
  const indexDir = path.join(location, 'indices', repoData.indices['logs-1'].id);
  for (const shard of ['0', '1']) {
    for (const f of await fsp.readdir(path.join(indexDir, shard))) {
      if (f.startsWith('__')) await fsp.appendFile(path.join(indexDir, shard, f), 'garbage');
    }
  }
  let r = await restoreLocal(rt, c.target, id, { options: { indices: 'logs-1' } });
  assert.equal(r.results[0]!.status, 'failed');
  assert.match(r.results[0]!.reason, /did not finish within 2s: logs-1 still not recovered/);

  // Without the snapshot's info file the snapshot cannot even be read.
  const record = JSON.parse(await fsp.readFile(path.join(c.target, id, 'node1/elasticsearch/snapshot.json'), 'utf8'));
  await fsp.rm(path.join(location, `snap-${record.uuid}.dat`));
  r = await restoreLocal(rt, c.target, id, { options: { indices: 'metrics', rename_suffix: '-x' } });
  assert.equal(r.results[0]!.status, 'failed');
  assert.match(r.results[0]!.reason, /HTTP 500 snapshot_exception: .*Snapshot could not be read/);
});

test('security plugin: its index stays out; restore into another cluster through a readonly repository', async () => {
  const a = await cluster({ securityPlugin: true });
  await seed(a.es);
  const rtA = runtimeOf([elasticsearch(a.config({ security_plugin: true }))]);
  const { id, manifest } = await backupLocal(rtA, a.target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const record = JSON.parse(await fsp.readFile(path.join(a.target, id, 'node1/elasticsearch/snapshot.json'), 'utf8'));
  assert.deepEqual(record.indices, ['.kibana_1', 'logs-1', 'metrics'], 'the security index is not in the snapshot');

  // Another cluster mounts the same shared location and reads the repository without writing to it.
  const b = await cluster({ target: a.target, securityPlugin: true });
  const securityBefore = (await b.es.api('GET', '/.opendistro_security')).body;
  const rtB = runtimeOf([elasticsearch(b.config({ security_plugin: true, readonly: true }))]);
  let r = await restoreLocal(rtB, a.target, id, { options: { include_global_state: 'true' } });
  assert.match(r.results[0]!.reason, /include_global_state=true cannot be used with the security plugin/);
  r = await restoreLocal(rtB, a.target, id, { options: { indices: '*' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.deepEqual(await docs(b.es, 'logs-1'), await docs(a.es, 'logs-1'));
  assert.deepEqual(await docs(b.es, '.kibana_1'), await docs(a.es, '.kibana_1'));
  assert.deepEqual((await b.es.api('GET', '/.opendistro_security')).body, securityBefore, 'the security index is untouched');
  assert.equal(b.es.repos.get('lsbackup')?.settings.readonly, 'true');

  const bk = await backupLocal(rtB, a.target);
  assert.match(bk.manifest.parts[0]!.reason, /configured readonly/);
});

test('kibana: kibana.yml round-trips; a restored file that is not YAML replaces nothing', async () => {
  const dir = tempDir('kibana');
  const yml = path.join(dir, 'kibana.yml');
  const good = 'server.host: "0.0.0.0"\nelasticsearch.hosts: ["https://localhost:9200"]\n';
  await fsp.writeFile(yml, good);
  const rt = runtimeOf([kibana(kibanaSchema.parse({ config_paths: [yml] }))]);
  const target = tempDir('target');
  const first = await backupLocal(rt, target);
  assert.equal(first.manifest.status, 'complete', first.manifest.reasons.join('; '));

  await fsp.writeFile(yml, 'server.host: "127.0.0.1"\n');
  let r = await restoreLocal(rt, target, first.id);
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal(await fsp.readFile(yml, 'utf8'), good);

  await fsp.writeFile(yml, 'server.host: [unclosed\n');
  const broken = await backupLocal(rt, target);
  await fsp.writeFile(yml, good);
  r = await restoreLocal(rt, target, broken.id);
  assert.equal(r.results[0]!.status, 'failed');
  assert.match(r.results[0]!.reason, /kibana.yml is not valid YAML.*nothing was replaced/);
  assert.equal(await fsp.readFile(yml, 'utf8'), good);
});

// ---- LambdaStack nodes: no hand-written settings ----

const HOST = os.hostname();
/** Where this machine's host name resolves; LambdaStack's certificates are for it, never for localhost. */
const hostAddress = lookup(HOST).then((a) => a.address).catch(() => undefined);

async function freePort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, host, resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** elasticsearch.yml as roles/opendistro_for_elasticsearch/templates/elasticsearch.yml.j2 renders it. */
function lambdaStackYml(o: { clusterName: string; port: number; pathRepo: string[] }): string {
  return [
    '# Ansible managed',
    `cluster.name: ${o.clusterName}`,
    `node.name: ${HOST}`,
    'path.data: /var/lib/elasticsearch',
    `path.repo: ${o.pathRepo.length === 1 ? o.pathRepo[0] : JSON.stringify(o.pathRepo)}`,
    'path.logs: /var/log/elasticsearch',
    `network.host: ${HOST}`,
    `http.port: ${o.port}`,
    'transport.port: 9300',
    `discovery.seed_hosts: ["${HOST}"]`,
    `cluster.initial_master_nodes: ["${HOST}"]`,
    `opendistro_security.ssl.transport.pemcert_filepath: lambdastack-node-${HOST}.pem`,
    `opendistro_security.ssl.transport.pemkey_filepath: lambdastack-node-${HOST}-key.pem`,
    'opendistro_security.ssl.transport.pemtrustedcas_filepath: lambdastack-root-ca.pem',
    'opendistro_security.ssl.transport.enforce_hostname_verification: true',
    'opendistro_security.ssl.http.enabled: true',
    `opendistro_security.ssl.http.pemcert_filepath: lambdastack-node-${HOST}.pem`,
    `opendistro_security.ssl.http.pemkey_filepath: lambdastack-node-${HOST}-key.pem`,
    'opendistro_security.ssl.http.pemtrustedcas_filepath: lambdastack-root-ca.pem',
    'opendistro_security.allow_unsafe_democertificates: false',
    'opendistro_security.allow_default_init_securityindex: true',
    'opendistro_security.authcz.admin_dn:',
    "  - 'CN=LambdaStack Admin,OU=R&D,O=LambdaStack'",
    'opendistro_security.enable_snapshot_restore_privilege: true',
    'opendistro_security.check_snapshot_restore_write_privileges: true',
    '',
  ].join('\n');
}

interface LsNode {
  root: string;
  yml: string;
  es: FakeEs;
  pki: Pki;
  /** The component as a LambdaStack agent builds it: schema defaults, files under `root`. */
  component: (extra?: Record<string, unknown>) => ReturnType<typeof elasticsearch>;
}

/** A node laid out as LambdaStack installs it, under a temp root, serving HTTPS on its host name. */
async function lambdaStackNode(o: { target: string; pathRepo: string[]; clusterName?: string; moreNodes?: { name: string; configFile: string; restartFlag?: string }[]; restartFlag?: string }): Promise<LsNode> {
  const address = (await hostAddress)!;
  const root = tempDir('ls-node');
  const etc = path.join(root, 'etc/elasticsearch');
  const nodePki = makePki(etc, { lambdastack: true, hosts: [HOST] });
  const port = await freePort(address);
  const yml = path.join(etc, 'elasticsearch.yml');
  await fsp.writeFile(yml, lambdaStackYml({ clusterName: o.clusterName ?? 'LambdaStackElastic', port, pathRepo: o.pathRepo }), { mode: 0o660 });
  const es = await FakeEs.start({
    configFile: yml,
    pki: nodePki,
    users: { admin: PASSWORD },
    securityPlugin: true,
    clusterName: o.clusterName ?? 'LambdaStackElastic',
    listen: { host: address, port, urlHost: HOST },
    moreNodes: o.moreNodes,
    restartFlag: o.restartFlag,
  });
  servers.push(es);
  return { root, yml, es, pki: nodePki, component: (extra = {}) => elasticsearch(elasticsearchSchema.parse(extra), { root }) };
}

let lastFactsId = '';
/** backupLocal with the facts the coordinator sends from the build directory (es_cluster, es_nodes, es_node_index). */
async function backupWithFacts(runs: { rt: AgentRuntime; facts: Record<string, string> }[], target: string): Promise<{ id: string; manifest: ManifestWithEntries }> {
  let id = newSetId();
  while (id <= lastFactsId) {
    await new Promise((r) => setTimeout(r, 200));
    id = newSetId();
  }
  lastFactsId = id;
  const dir = setDir(target, id);
  await mkdirPrivate(dir);
  const startedAt = new Date().toISOString();
  const results = await Promise.all(
    runs.map(({ rt, facts }) =>
      backupNode(rt, { backupId: id, target, setFormat: 3, node: rt.node, components: [], plans: [{ component: 'elasticsearch', optional: false, facts }] }, () => undefined, new AbortController().signal),
    ),
  );
  const nodes = Object.fromEntries(runs.map(({ rt }) => [rt.node, { address: 'in-process' }]));
  const manifest = await commitSet(dir, FORMAT, { id, startedAt, buildDir: '', nodes, notCovered: [] }, await partsFromAnswers(dir, results.flat()));
  return { id, manifest: await withEntries(dir, manifest) };
}

test('LambdaStack node, no settings: admin client certificate over HTTPS on the host name, one repository per cluster, round trip', async (t) => {
  if (!(await hostAddress)) assert.fail(`host name ${HOST} does not resolve here: add it to /etc/hosts (the LambdaStack tests reach Elasticsearch by host name, as its certificates require)`);
  const target = tempDir('ls-target');
  const location = path.join(target, '_elasticsearch', 'logging');
  const n = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots', location] });
  await seed(n.es);
  const seeded = n.es.principals.length;
  const rt = runtimeOf([n.component()], undefined, HOST);
  const facts = { es_cluster: 'logging', es_cluster_name: 'LambdaStackElastic', es_nodes: HOST, es_node_index: '0' };
  const { id, manifest } = await backupWithFacts([{ rt, facts }], target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const part = manifest.parts[0]!;
  assert.deepEqual(
    { repository: part.meta.repository, location: part.meta.location, es_cluster: part.meta.es_cluster, snapshot_taken_by: part.meta.snapshot_taken_by },
    { repository: 'lsbackup-logging', location, es_cluster: 'logging', snapshot_taken_by: HOST },
  );
  assert.ok(existsSync(path.join(location, 'index.latest')), 'the snapshot is in the cluster\'s own location');
  assert.deepEqual([...n.es.repos.keys()], ['lsbackup-logging']);
  assert.deepEqual([...new Set(n.es.principals.slice(seeded))], [n.pki.adminDn], 'every request was made as the admin certificate LambdaStack creates');
  // As LambdaStack's own backup, the whole config directory: the node's certificates come back with it.
  const kept = part.entries.map((e) => e.path);
  for (const f of [n.yml, n.pki.adminCertFile!, n.pki.caFile, n.pki.certFile]) assert.ok(kept.includes(f), `${f} is in files.tar.gz`);
  const record = JSON.parse(await fsp.readFile(path.join(target, id, HOST, 'elasticsearch/snapshot.json'), 'utf8'));
  assert.deepEqual(record.indices, ['.kibana_1', 'logs-1', 'metrics'], 'the security index stays out (security_plugin defaults on)');

  const before = await docs(n.es, 'logs-1');
  assert.equal((await n.es.api('DELETE', '/logs-1')).status, 200);
  const r = await restoreLocal(rt, target, id, { options: { indices: 'logs-1' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.deepEqual(await docs(n.es, 'logs-1'), before);

  // The certificate is for the host name only: the same node by "localhost" fails the TLS check.
  const byLocalhost = runtimeOf([n.component({ url: n.es.url.replace(HOST, 'localhost') })], undefined, HOST);
  const refused = await backupWithFacts([{ rt: byLocalhost, facts }], target);
  assert.match(refused.manifest.parts[0]!.reason, /TLS certificate check of localhost:\d+ failed \(ERR_TLS_CERT_ALTNAME_INVALID/);
});

test('two clusters in one inventory ([logging], [opendistro_for_elasticsearch]): two repositories, two locations, two holdings', async (t) => {
  if (!(await hostAddress)) assert.fail(`host name ${HOST} does not resolve here: add it to /etc/hosts (the LambdaStack tests reach Elasticsearch by host name, as its certificates require)`);
  const target = tempDir('ls-target');
  const shared = path.join(target, '_elasticsearch');
  const logging = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots', shared] });
  const odfe = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots', shared] });
  await seed(logging.es);
  await odfe.es.api('PUT', '/app-logs');
  await odfe.es.api('PUT', '/app-logs/_doc/1', { m: 'from odfe' });
  const { manifest } = await backupWithFacts(
    [
      { rt: runtimeOf([logging.component()], undefined, 'logging1'), facts: { es_cluster: 'logging', es_nodes: 'logging1', es_node_index: '0' } },
      { rt: runtimeOf([odfe.component()], undefined, 'opendistro1'), facts: { es_cluster: 'opendistro_for_elasticsearch', es_nodes: 'opendistro1', es_node_index: '0' } },
    ],
    target,
  );
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const meta = Object.fromEntries(manifest.parts.map((p) => [p.node, p.meta]));
  assert.equal(meta.logging1!.repository, 'lsbackup-logging');
  assert.equal(meta.opendistro1!.repository, 'lsbackup-opendistro_for_elasticsearch');
  assert.equal(meta.logging1!.location, path.join(shared, 'logging'));
  assert.equal(meta.opendistro1!.location, path.join(shared, 'opendistro_for_elasticsearch'));
  assert.deepEqual([...logging.es.repos.keys()], ['lsbackup-logging']);
  assert.deepEqual([...odfe.es.repos.keys()], ['lsbackup-opendistro_for_elasticsearch']);
  for (const m of Object.values(meta)) assert.ok(existsSync(path.join(m.location!, 'index.latest')), `${m.location} holds a repository`);
  const keys = new Set(manifest.parts.flatMap((p) => (p.external ?? []).map((x) => x.key)));
  assert.ok(manifest.parts.every((p) => p.external?.length === 1), 'every node\'s part declares the snapshot it records');
  assert.equal(keys.size, 2, 'removing the set releases each cluster\'s snapshot separately');
});

test('path.repo without the location: one line naming the file, what path.repo has and what it needs; nothing written', async (t) => {
  if (!(await hostAddress)) assert.fail(`host name ${HOST} does not resolve here: add it to /etc/hosts (the LambdaStack tests reach Elasticsearch by host name, as its certificates require)`);
  const target = tempDir('ls-target');
  const location = path.join(target, '_elasticsearch', 'logging');
  const n = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots'] });
  const ymlBefore = await fsp.readFile(n.yml, 'utf8');
  const rt = runtimeOf([n.component()], undefined, 'logging1');
  const { id, manifest } = await backupWithFacts([{ rt, facts: { es_cluster: 'logging', es_nodes: 'logging1,logging2', es_node_index: '0' } }], target);
  const part = manifest.parts[0]!;
  assert.equal(part.status, 'failed');
  assert.equal(
    part.reason,
    `${n.yml} has path.repo ["/var/lib/elasticsearch-snapshots"], which does not cover the snapshot location ${location}: ` +
      `set path.repo: ["/var/lib/elasticsearch-snapshots","${location}"] on every node of cluster logging (logging1, logging2) and restart them one at a time, ` +
      'or set allow_config_edit: true with a reload_command',
  );
  assert.equal(await fsp.readFile(n.yml, 'utf8'), ymlBefore, 'the config file is untouched');
  assert.ok(!existsSync(path.join(target, '_elasticsearch')), 'no repository directory was made');
  assert.deepEqual(n.es.requests, [], 'nothing was asked of the cluster');
  assert.deepEqual(part.artifacts, []);
  // Only the record of the failed part stays (FORMAT.md "Format 2"), nothing that could pass for its backup.
  assert.deepEqual(await fsp.readdir(path.join(target, id, 'logging1', 'elasticsearch')), ['part.json'], 'no artifact is left');
});

test('a three-node cluster: node 0 takes the snapshot, the others keep their config files and point at it', async (t) => {
  if (!(await hostAddress)) assert.fail(`host name ${HOST} does not resolve here: add it to /etc/hosts (the LambdaStack tests reach Elasticsearch by host name, as its certificates require)`);
  const target = tempDir('ls-target');
  const location = path.join(target, '_elasticsearch', 'logging');
  const others = ['logging2', 'logging3'].map((name) => ({ name, root: tempDir(`ls-${name}`) }));
  const more = [];
  for (const o of others) {
    const yml = path.join(o.root, 'etc/elasticsearch/elasticsearch.yml');
    await fsp.mkdir(path.dirname(yml), { recursive: true });
    await fsp.writeFile(yml, lambdaStackYml({ clusterName: 'LambdaStackElastic', port: 9200, pathRepo: ['/var/lib/elasticsearch-snapshots', location] }));
    more.push({ name: o.name, configFile: yml });
  }
  const n = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots', location], moreNodes: more });
  await seed(n.es);
  // Every node reaches the cluster through the first node's address and certificates here; each has its own config file.
  const follower = (o: { name: string; root: string }) =>
    elasticsearch(elasticsearchSchema.parse({ url: n.es.url, ca_file: n.pki.caFile, client_cert_file: n.pki.adminCertFile, client_key_file: n.pki.adminKeyFile }), { root: o.root });
  const nodes = ['logging1', ...others.map((o) => o.name)].join(',');
  const runs = [
    { rt: runtimeOf([n.component()], undefined, 'logging1'), facts: { es_cluster: 'logging', es_nodes: nodes, es_node_index: '0' } },
    ...others.map((o, i) => ({ rt: runtimeOf([follower(o)], undefined, o.name), facts: { es_cluster: 'logging', es_nodes: nodes, es_node_index: String(i + 1) } })),
  ];
  const { id, manifest } = await backupWithFacts(runs, target);
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  assert.equal(n.es.requests.filter((r) => r.method === 'PUT' && r.path.startsWith('/_snapshot/lsbackup-logging/')).length, 1, 'one snapshot for the cluster');
  const byNode = Object.fromEntries(manifest.parts.map((p) => [p.node, p]));
  assert.deepEqual(byNode.logging1!.artifacts.map((a) => path.basename(a.path)).sort(), ['files.tree.jsonl.gz', 'snapshot.json']);
  for (const o of others) {
    const p = byNode[o.name]!;
    assert.deepEqual(p.artifacts.map((a) => path.basename(a.path)), ['files.tree.jsonl.gz']);
    assert.equal(p.meta.snapshot_taken_by, 'logging1');
    assert.equal(p.meta.snapshot, byNode.logging1!.meta.snapshot);
    assert.deepEqual(p.external, byNode.logging1!.external, 'a follower declares the cluster\'s snapshot too: any node can release it');
    assert.ok(p.entries.some((e) => e.path === path.join(o.root, 'etc/elasticsearch/elasticsearch.yml')));
  }
  const r = await restoreLocal(runs[1]!.rt, target, id, { options: { indices: 'logs-1', rename_suffix: '-x' } });
  assert.equal(r.results[0]!.status, 'ok', r.results[0]!.reason);
  assert.equal((await n.es.api('GET', '/logs-1-x')).status, 404, "a follower's part restores no indices");
});

test('allow_config_edit on a two-node cluster: each node edits its own path.repo and restarts, never two at once', async (t) => {
  if (!(await hostAddress)) assert.fail(`host name ${HOST} does not resolve here: add it to /etc/hosts (the LambdaStack tests reach Elasticsearch by host name, as its certificates require)`);
  const target = tempDir('ls-target');
  const location = path.join(target, '_elasticsearch', 'logging');
  const root2 = tempDir('ls-logging2');
  const yml2 = path.join(root2, 'etc/elasticsearch/elasticsearch.yml');
  await fsp.mkdir(path.dirname(yml2), { recursive: true });
  await fsp.writeFile(yml2, lambdaStackYml({ clusterName: 'LambdaStackElastic', port: 9200, pathRepo: ['/var/lib/elasticsearch-snapshots'] }));
  const flags = [path.join(target, 'restart-1'), path.join(target, 'restart-2')];
  const n = await lambdaStackNode({ target, pathRepo: ['/var/lib/elasticsearch-snapshots'], restartFlag: flags[0], moreNodes: [{ name: 'logging2', configFile: yml2, restartFlag: flags[1] }] });
  await seed(n.es);
  const restarts = path.join(target, 'restarts.log');
  // A restart that takes a while: if two ran at once their lines would interleave.
  const reload = (node: string, flag: string) => ['sh', '-c', `echo "down ${node}" >> ${restarts}; sleep 0.4; echo "up ${node}" >> ${restarts}; touch ${flag}`];
  const edit = { allow_config_edit: true, reload_timeout_seconds: 20 };
  const second = elasticsearch(
    elasticsearchSchema.parse({ url: n.es.url, ca_file: n.pki.caFile, client_cert_file: n.pki.adminCertFile, client_key_file: n.pki.adminKeyFile, reload_command: reload('logging2', flags[1]!), ...edit }),
    { root: root2 },
  );
  const facts = (i: number) => ({ es_cluster: 'logging', es_nodes: 'logging1,logging2', es_node_index: String(i) });
  const { manifest } = await backupWithFacts(
    [
      { rt: runtimeOf([n.component({ reload_command: reload('logging1', flags[0]!), ...edit })], undefined, 'logging1'), facts: facts(0) },
      { rt: runtimeOf([second], undefined, 'logging2'), facts: facts(1) },
    ],
    target,
  );
  assert.equal(manifest.status, 'complete', manifest.reasons.join('; '));
  const lines = (await fsp.readFile(restarts, 'utf8')).trim().split('\n');
  assert.equal(lines.length, 4, lines.join('; '));
  for (let i = 0; i < lines.length; i += 2) assert.equal(lines[i + 1], lines[i]!.replace('down', 'up'), `one node down at a time: ${lines.join('; ')}`);
  assert.equal(n.es.restarts, 2);
  for (const f of [n.yml, yml2]) assert.deepEqual(YAML.parse(await fsp.readFile(f, 'utf8'))['path.repo'], ['/var/lib/elasticsearch-snapshots', location]);
  assert.equal(n.es.clusterSettings.has('cluster.routing.allocation.enable'), false, 'shard allocation is enabled again');
  assert.ok(n.es.requests.some((r) => r.method === 'PUT' && r.path === '/_cluster/settings'), 'allocation was held while a node was down');
  assert.ok(!existsSync(path.join(target, '_elasticsearch', '.logging.restart.lock')), 'the restart lock is gone');
});

test('detect: the Open Distro layout, the Epiphany v2 OpenSearch layout, and neither; index.ts serves it with no settings', async () => {
  const odfe = tempDir('fx-odfe');
  const etc = path.join(odfe, 'etc/elasticsearch');
  const fx = makePki(etc, { lambdastack: true, hosts: ['logging1'] });
  await fsp.writeFile(path.join(etc, 'elasticsearch.yml'), 'cluster.name: LambdaStackElastic\nnetwork.host: logging1\nhttp.port: 9200\nopendistro_security.ssl.http.pemtrustedcas_filepath: lambdastack-root-ca.pem\n');
  let d = await elasticsearch(elasticsearchSchema.parse({}), { root: odfe }).detect();
  assert.deepEqual(d, {
    present: true,
    detail: `Open Distro for Elasticsearch: ${etc}/elasticsearch.yml, cluster LambdaStackElastic, https://logging1:9200, client certificate ${fx.adminCertFile}`,
  });

  const os2 = tempDir('fx-opensearch');
  const conf = path.join(os2, 'usr/share/opensearch/config');
  await fsp.mkdir(conf, { recursive: true });
  await fsp.writeFile(
    path.join(conf, 'opensearch.yml'),
    'cluster.name: lambdastack-logging\nnetwork.host: node5\nhttp.port: 9200\nplugins.security.ssl.http.pemtrustedcas_filepath: "/usr/share/opensearch/config/epiphany-root-ca.pem"\n',
  );
  d = await elasticsearch(elasticsearchSchema.parse({}), { root: os2 }).detect();
  assert.equal(d.present, true);
  assert.equal(
    d.detail,
    `OpenSearch: ${conf}/opensearch.yml, cluster lambdastack-logging, https://node5:9200, client certificate ${conf}/epiphany-admin.pem, ` +
      `CA ${conf}/epiphany-root-ca.pem missing, client certificate ${conf}/epiphany-admin.pem: ENOENT`,
  );

  const none = tempDir('fx-none');
  d = await elasticsearch(elasticsearchSchema.parse({}), { root: none }).detect();
  assert.deepEqual(d, {
    present: false,
    detail: `no Elasticsearch or OpenSearch here (looked for ${none}/etc/elasticsearch/elasticsearch.yml, ${none}/usr/share/opensearch/config/opensearch.yml)`,
  });

  const parsed = elasticsearchSchema.parse({});
  assert.equal(parsed.security_plugin, true, 'LambdaStack always runs the security plugin');
  assert.ok(createComponents({}, true).all.has('elasticsearch'), 'with no settings the agent still looks for it');
});

test('the node address: network.host and http.port as the node reads them, the host name otherwise; expired certificates are named', async () => {
  const env = { hostname: () => 'logging1.example.internal' };
  assert.deepEqual(nodeUrlOf({ 'network.host': 'logging1', 'http.port': 9201 }, env), { url: 'https://logging1:9201', from: 'network.host' });
  assert.deepEqual(nodeUrlOf({ network: { host: '_site_' }, http: { port: '9202-9300' } }, env), { url: 'https://logging1.example.internal:9202', from: 'host name' });
  assert.deepEqual(nodeUrlOf({ 'network.host': '0.0.0.0', 'http.host': 'fe80::1' }, env), { url: 'https://[fe80::1]:9200', from: 'network.host' });
  assert.deepEqual(nodeUrlOf(undefined, env), { url: 'https://logging1.example.internal:9200', from: 'host name' });
  const fx = makePki(tempDir('fx-cert'), { lambdastack: true, hosts: ['logging1'] });
  assert.equal(await certificateProblem(fx.adminCertFile!), undefined);
  // LambdaStack issues its admin certificate with ownca_not_after 20221231235959Z.
  assert.match((await certificateProblem(fx.adminCertFile!, new Date(Date.now() + 10 * 86400_000)))!, /lambdastack-admin\.pem expired on \d{4}-\d{2}-\d{2}$/);
});
