/**
 * The build directory as LambdaStack writes it (test/fixtures/lambdastack): its inventory of 25
 * role groups and its manifest.yml decide which components each host is asked for and what the
 * agents are told; a broken manifest.yml is one line naming the file and the document.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseClusterConfig, readClusterConfig } from '../coordinator/cluster-config.js';
import { readInventory } from '../coordinator/inventory.js';
import { plan } from '../coordinator/plan.js';
import { tempDir } from './helpers/harness.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/lambdastack');
const buildDir = path.join(fixtures, 'build/mycluster');
const manifestText = () => fsp.readFile(path.join(buildDir, 'manifest.yml'), 'utf8');

/** A copy of the fixture build directory with its manifest.yml changed (or removed, for null). */
async function variant(edit: ((text: string) => string) | null): Promise<string> {
  const dir = tempDir('build');
  await fsp.copyFile(path.join(buildDir, 'inventory'), path.join(dir, 'inventory'));
  if (edit) await fsp.writeFile(path.join(dir, 'manifest.yml'), edit(await manifestText()));
  return dir;
}

const planned = (p: ReturnType<typeof plan>) =>
  Object.fromEntries([...p.hosts].map(([h, cs]) => [h.name, cs.map((c) => `${c.component}${c.optional ? '?' : ''}`).sort().join(',')]));

test("LambdaStack's inventory: every one of its 25 groups is read, and only data groups get a line of their own", async () => {
  const inv = await readInventory(buildDir, 50551);
  const groups = new Set([...inv.hosts.values()].flatMap((h) => h.groups));
  assert.equal(groups.size, 25, `groups: ${[...groups].sort().join(', ')}`);
  assert.equal(inv.hosts.get('monitoring1')?.address, '192.168.100.106');
  assert.deepEqual(inv.notCovered, [
    'ignite: ignite1 (holds Apache Ignite persistence, which lsbackup does not back up)',
    'kafka: kafka1, kafka2 (holds Kafka topics and offsets, which lsbackup does not back up)',
    'kubernetes_master: master1 (holds the Kubernetes etcd, which lsbackup does not back up)',
    'vault: master1 (holds HashiCorp Vault storage, which lsbackup does not back up)',
    'zookeeper: kafka1, kafka2 (holds ZooKeeper data, which lsbackup does not back up)',
    'nothing to back up in applications, filebeat, firewall, haproxy_exporter, helm, image_registry, jmx_exporter, kafka_exporter, kubernetes_node, node_exporter, postgres_exporter, repository',
  ]);
});

test("LambdaStack's manifest.yml: defaults read as LambdaStack ships them", async () => {
  const cfg = await readClusterConfig(buildDir, path.join(buildDir, 'inventory'));
  assert.ok(cfg, 'manifest.yml beside the inventory is found');
  assert.equal(cfg.kind, 'lambdastack-cluster');
  assert.equal(cfg.version, '1.3.4');
  assert.equal(cfg.alertmanager, false);
  assert.deepEqual(cfg.replication, { enabled: false, user: 'ls_repmgr', privilegedUser: 'ls_repmgr_admin', database: 'ls_repmgr' });
  assert.deepEqual(cfg.rabbitmqPlugins, []);
  assert.deepEqual(cfg.esClusterNames, { logging: 'LambdaStackElastic', opendistro_for_elasticsearch: 'LambdaStackElastic' });
  assert.equal(cfg.components.get('postgresql'), 2);
  assert.equal(cfg.components.get('single_machine'), 0);
});

test('a default cluster: no alertmanager asked for, two Elasticsearch clusters keyed apart, facts for each host', async () => {
  const inv = await readInventory(buildDir, 50551);
  const cfg = await readClusterConfig(buildDir, inv.file);
  const p = plan(inv.hosts, [], [], cfg);
  assert.deepEqual(planned(p), {
    logging1: 'elasticsearch,kibana',
    monitoring1: 'grafana,prometheus',
    postgresql1: 'postgresql',
    postgresql2: 'postgresql',
    loadbalancer1: 'haproxy',
    rabbitmq1: 'rabbitmq',
    opendistro1: 'elasticsearch',
  });
  assert.match(p.notes.join('\n'), /alertmanager: not enabled in .*manifest\.yml/);
  const facts = (host: string, component: string) => [...p.hosts].find(([h]) => h.name === host)![1].find((c) => c.component === component)!.facts;
  // Both clusters are called LambdaStackElastic by default: the group, not the name, keeps their repositories apart.
  assert.deepEqual(facts('logging1', 'elasticsearch'), { es_cluster: 'logging', es_nodes: 'logging1', es_node_index: '0', es_cluster_name: 'LambdaStackElastic' });
  assert.deepEqual(facts('opendistro1', 'elasticsearch'), { es_cluster: 'opendistro_for_elasticsearch', es_nodes: 'opendistro1', es_node_index: '0', es_cluster_name: 'LambdaStackElastic' });
  assert.deepEqual(facts('postgresql2', 'postgresql'), { replication: 'false', postgresql_hosts: 'postgresql1,postgresql2' });
  assert.deepEqual(facts('rabbitmq1', 'rabbitmq'), { rabbitmq_plugins: '' });
});

test('alertmanager enabled in manifest.yml is required; without a manifest.yml it is looked for', async () => {
  const enabled = await variant((t) => t.replace(/(  alertmanager:\n    enable:) false/, '$1 true'));
  let inv = await readInventory(enabled, 50551);
  let p = plan(inv.hosts, [], [], await readClusterConfig(enabled, inv.file));
  assert.equal(planned(p).monitoring1, 'alertmanager,grafana,prometheus');

  const none = await variant(null);
  inv = await readInventory(none, 50551);
  assert.equal(await readClusterConfig(none, inv.file), undefined);
  p = plan(inv.hosts, [], [], undefined);
  assert.equal(planned(p).monitoring1, 'alertmanager?,grafana,prometheus');
});

test('replication, plugins and Epiphany: what the agents are told', async () => {
  const text = await manifestText();
  const withRepl = parseClusterConfig(text.replace(/(    replication:\n      enabled:) false/, '$1 true').replace('rabbitmq_plugins: []', 'rabbitmq_plugins:\n  - rabbitmq_management'), 'm.yml');
  assert.equal(withRepl.replication.enabled, true);
  assert.deepEqual(withRepl.rabbitmqPlugins, ['rabbitmq_management']);
  const inv = await readInventory(buildDir, 50551);
  const facts = [...plan(inv.hosts, ['postgresql1'], [], withRepl).hosts.values()][0]![0]!.facts;
  assert.deepEqual(facts, { replication: 'true', postgresql_hosts: 'postgresql1,postgresql2', primary: 'postgresql1', replication_user: 'ls_repmgr', privileged_user: 'ls_repmgr_admin', repmgr_database: 'ls_repmgr' });
  // Epiphany replicates whenever [postgresql] has two hosts, whatever the setting says.
  const epiphany = parseClusterConfig(text.replace('kind: lambdastack-cluster', 'kind: epiphany-cluster'), 'm.yml');
  assert.equal([...plan(inv.hosts, ['postgresql1'], [], epiphany).hosts.values()][0]![0]!.facts.replication, 'true');
});

test('a broken manifest.yml is one line naming the file and the document', async () => {
  const text = await manifestText();
  const cases: [string, string, RegExp][] = [
    ['not YAML', text.replace('kind: configuration/shared-config', 'kind: [configuration/shared-config'), /manifest\.yml document 2: not valid YAML: /],
    ['an unknown component', text.replace('    kubernetes_node:\n      count: 2', '    kubernetes_nodes:\n      count: 2'), /manifest\.yml document 3 \(kind: lambdastack-cluster\): unknown component 'kubernetes_nodes' \(known: /],
    ['an unknown kind', text.replace('kind: configuration/shared-config', 'kind: shared-config'), /manifest\.yml document 2: unknown kind 'shared-config'/],
    ['no cluster document', text.replace('kind: lambdastack-cluster', 'kind: configuration/cluster'), /manifest\.yml: no 'kind: lambdastack-cluster' document$/],
    ['a word for a flag', text.replace(/(  alertmanager:\n    enable:) false/, '$1 sometimes'), /\(kind: configuration\/prometheus\): specification\.alertmanager\.enable must be true or false$/],
    ['a count that is not a number', text.replace('    kubernetes_node:\n      count: 2', '    kubernetes_node:\n      count: two'), /components\.kubernetes_node\.count must be a whole number$/],
  ];
  for (const [what, body, expected] of cases) {
    const dir = await variant(() => body);
    const inv = await readInventory(dir, 50551);
    await assert.rejects(readClusterConfig(dir, inv.file), (err: Error) => {
      assert.match(err.message, expected, what);
      assert.ok(!err.message.includes('\n'), `${what}: one line`);
      assert.ok(err.message.includes(path.join(dir, 'manifest.yml')), `${what}: names the file`);
      assert.ok(!err.message.includes('PASSWORD_TO_CHANGE'), `${what}: quotes no value of the file`);
      return true;
    });
  }
});
