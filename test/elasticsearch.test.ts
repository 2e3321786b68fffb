import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { elasticsearch, elasticsearchSchema, snapshotNameOf } from '../agent/components/elasticsearch.js';
import { duBytes } from '../common/fsutil.js';
import { kibana, kibanaSchema } from '../agent/components/kibana.js';
import { releasePart } from '../agent/runner.js';
import { backupLocal, restoreLocal, runtimeOf, tempDir } from './helpers/harness.js';
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
    elasticsearchSchema.parse({ url: es.url, ca_file: pki.caFile, username: 'admin', password_file: passwordFile, config_file: yml, ...extra });
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
  assert.deepEqual(part.artifacts.map((a) => path.basename(a.path)).sort(), ['files.zip', 'snapshot.json']);
  assert.ok(part.entries.some((e) => e.path === c.yml), 'elasticsearch.yml is in files.zip');
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
