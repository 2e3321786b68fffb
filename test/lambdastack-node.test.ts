/**
 * A node as LambdaStack configures it, in a systemd-nspawn container with a real systemd:
 * PostgreSQL with peer auth and no password, Prometheus from LambdaStack's unit file and flags,
 * RabbitMQ without the management plugin and with LambdaStack's env file, HAProxy's binary only
 * at the runc rootfs path, Grafana's SQLite database, no Alertmanager. The agent's config names
 * only node, listen and TLS. `lambdastack backup -b <build dir>` with LambdaStack's inventory and
 * manifest.yml gives a complete set, and each component round-trips.
 *
 * Elasticsearch has no server here (see README): its groups are left empty. Kibana's part is its
 * config directory, which needs no server.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, promises as fsp, realpathSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { certsInit, certsIssue } from '../cli/certs.js';
import { bin, freePort, spawnDaemon } from '../demo/cluster.js';
import { placeHosts } from './helpers/lambdastack-inventory.js';
import { Container, repoRoot, testRoot } from './helpers/nspawn.js';

const fixtures = path.join(repoRoot, 'test/fixtures/lambdastack');
const NODE_IP = '127.0.0.30';
/** Groups this node serves; LambdaStack would spread them over machines, the container holds them all. */
const NODE_GROUPS = ['postgresql', 'prometheus', 'grafana', 'rabbitmq', 'haproxy', 'kibana'];
const EMPTIED = ['logging', 'opendistro_for_elasticsearch'];

/** LambdaStack's inventory with this node in the groups it serves and the Elasticsearch groups emptied. */
const inventoryFor = (text: string, port: number, name = 'node1', ip = NODE_IP) =>
  placeHosts(text, [{ line: `${name} ansible_host=${ip} lsbackup_agent_port=${port}`, groups: NODE_GROUPS }], [...NODE_GROUPS, ...EMPTIED]);
/** The replacement for node1 once it is gone: another name and address, as a rebuilt VM gets. */
const NODE4_IP = '127.0.0.31';

const PG_HBA = `# Ansible managed (LambdaStack roles/postgresql/templates/pg_hba.conf.j2)
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     peer
host    all             all             0.0.0.0/0               md5
host    all             all             ::0/0                   md5
`;

const HAPROXY_CFG = `global
    log /dev/log local0
    maxconn 4096
    tune.ssl.default-dh-param 2048

defaults
    log global
    mode http
    option httplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s

listen stats
    bind 127.0.0.1:19000
    stats enable
    stats uri /haproxy?stats

frontend https_front
    bind 127.0.0.1:19443 ssl crt /etc/ssl/haproxy/self-signed-test.tld.pem
    default_backend http_back1

backend http_back1
    server node1 127.0.0.1:30104 check
`;

const PROMETHEUS_YML = `global:
  scrape_interval: 1s
  evaluation_interval: 10s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['localhost:9090']
`;

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${url} is not ready after 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('a LambdaStack node in a container: configured as LambdaStack does, backed up with no component settings', { timeout: 20 * 60_000 }, () => {
  let root = '';
  let node: Container | undefined;
  let agent: ChildProcess | undefined;
  let coordinator: ChildProcess | undefined;
  let cliConfig = '';
  let buildDir = '';
  let target = '';
  let agentConfig = '';

  const cli = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [bin.cli, ...args], { env: { ...process.env, LSBACKUP_CONFIG: cliConfig }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  const result = (stdout: string) => (JSON.parse(stdout.trim().split('\n').at(-1)!) as { result: Record<string, unknown> }).result;
  const psqlOn = (n: Container, sql: string, db = 'postgres') => n.sh(`runuser -u postgres -- psql -X -At -d ${db} -c "${sql.replace(/"/g, '\\"')}"`);
  const psql = (sql: string, db = 'postgres') => psqlOn(node!, sql, db);

  /** A host as LambdaStack's roles leave it before any data is written: packages, units, auth, the runc HAProxy. */
  async function bootNode(name: string): Promise<Container> {
    // node_modules may be a link out of the checkout (a git worktree's): the agent inside needs its target too.
    const modules = realpathSync(path.join(repoRoot, 'node_modules'));
    const extra: [string, string][] = modules.startsWith(repoRoot + '/') ? [] : [[modules, modules]];
    const n = await Container.boot(testRoot(), name, [root], [[repoRoot, repoRoot], ['/usr/bin/node', '/usr/bin/node'], ...extra]);
    await n.sh(`grep -q ' ${name}$' /etc/hosts || echo '127.0.1.1 ${name}' >> /etc/hosts`);
    // PostgreSQL as roles/postgresql leaves it: peer for local connections, no password for postgres.
    await n.writeFile('/etc/postgresql/15/main/pg_hba.conf', PG_HBA, 0o640);
    await n.sh('chown postgres:postgres /etc/postgresql/15/main/pg_hba.conf && systemctl start postgresql@15-main');
    // Prometheus from LambdaStack's unit file: /usr/local/bin/prometheus, --storage.tsdb.path=/var/lib/prometheus, admin API on.
    await n.writeFile('/etc/systemd/system/prometheus.service', await fsp.readFile(path.join(fixtures, 'node/prometheus.service'), 'utf8'));
    await n.writeFile('/etc/prometheus/prometheus.yml', PROMETHEUS_YML);
    await n.sh('ln -sf /usr/bin/prometheus /usr/local/bin/prometheus && chown -R prometheus:prometheus /var/lib/prometheus && systemctl daemon-reload && systemctl start prometheus');
    // RabbitMQ with LambdaStack's env and config files, and no plugin enabled.
    await n.writeFile('/etc/rabbitmq/rabbitmq-env.conf', await fsp.readFile(path.join(fixtures, 'node/rabbitmq-env.conf'), 'utf8'));
    await n.writeFile('/etc/rabbitmq/rabbitmq.conf', await fsp.readFile(path.join(fixtures, 'node/rabbitmq.conf'), 'utf8'));
    await n.sh('rm -f /etc/rabbitmq/enabled_plugins && systemctl start rabbitmq-server && rabbitmqctl await_startup >/dev/null');
    // HAProxy as roles/haproxy_runc leaves it: the binary only inside the container rootfs.
    await n.sh('mkdir -p /opt/runc/haproxy/rootfs/usr/local/sbin && cp /usr/sbin/haproxy /opt/runc/haproxy/rootfs/usr/local/sbin/haproxy && rm -f /usr/sbin/haproxy');
    await n.writeFile('/etc/systemd/system/haproxy.service', await fsp.readFile(path.join(fixtures, 'node/haproxy.service'), 'utf8'));
    // Grafana: no Debian package, so a unit standing in for grafana-server.
    await n.writeFile('/etc/systemd/system/grafana-server.service', '[Service]\nExecStart=/bin/sleep infinity\n');
    await n.sh('mkdir -p /var/lib/grafana && systemctl daemon-reload && systemctl start grafana-server');
    // Alertmanager is not installed on a default LambdaStack node; Debian's package in the root is taken away.
    await n.sh('rm -f /lib/systemd/system/prometheus-alertmanager.service /etc/prometheus/alertmanager.yml && systemctl daemon-reload');
    return n;
  }

  /** What the cluster put on the node over its life: databases, roles, vhosts, HAProxy's config and certificate, dashboards. */
  async function writeData(n: Container): Promise<void> {
    const sql = (q: string, db = 'postgres') => psqlOn(n, q, db);
    await sql('CREATE DATABASE shop');
    await sql("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL); INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, 500) g", 'shop');
    await sql("CREATE ROLE app LOGIN PASSWORD 'app-secret-1'");
    await n.sh('rabbitmqctl add_vhost orders >/dev/null && rabbitmqctl add_user shop shop-pass-1 >/dev/null && rabbitmqctl set_permissions -p orders shop ".*" ".*" ".*" >/dev/null && rabbitmqctl set_policy -p orders ttl "^q\\." \'{"message-ttl":60000}\' >/dev/null');
    await n.writeFile('/etc/haproxy/haproxy.cfg', HAPROXY_CFG);
    await n.sh(
      'mkdir -p /etc/ssl/haproxy && cd /tmp && openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem -days 30 -subj /CN=test.tld 2>/dev/null && cat c.pem k.pem > /etc/ssl/haproxy/self-signed-test.tld.pem && chmod 600 /etc/ssl/haproxy/self-signed-test.tld.pem',
    );
    await n.writeFile('/etc/grafana/grafana.ini', '[paths]\ndata = /var/lib/grafana\n[server]\nprotocol = https\ncert_file = /etc/grafana/ssl/grafana_cert.pem\n', 0o640);
    await n.sh("sqlite3 /var/lib/grafana/grafana.db \"CREATE TABLE dashboard (id INTEGER PRIMARY KEY, title TEXT); INSERT INTO dashboard (title) VALUES ('Cluster'), ('PostgreSQL');\"");
    // Kibana as roles/kibana leaves it: /etc/kibana/kibana.yml (root:kibana 0660 there; root here).
    await n.writeFile('/etc/kibana/kibana.yml', 'server.host: "0.0.0.0"\nelasticsearch.hosts: ["https://logging1:9200"]\nelasticsearch.username: kibanaserver\nelasticsearch.ssl.verificationMode: none\n', 0o660);
  }

  /** The agent inside a container, as its systemd unit would run it there. */
  function agentIn(n: Container, config: string): Promise<ChildProcess> {
    const cmd = ['nsenter', '-t', String(n.pid), '-a', '--', 'env', 'MALLOC_ARENA_MAX=2', '/usr/bin/node', path.join(repoRoot, 'dist/agent/main.js'), '--config', config];
    return spawnDaemon(cmd, `agent in the container ${n.name}`);
  }

  async function startAgent(): Promise<void> {
    agent = await agentIn(node!, agentConfig);
  }

  before(async () => {
    testRoot();
    root = mkdtempSync(path.join(os.tmpdir(), 'lsbackup-lsnode-'));
    target = path.join(root, 'shared/backups');
    buildDir = path.join(root, 'build/mycluster');
    const pki = path.join(root, 'pki');
    await fsp.mkdir(target, { recursive: true, mode: 0o700 });
    await fsp.mkdir(buildDir, { recursive: true });
    await certsInit(pki);
    await certsIssue(pki, 'coordinator', 'coordinator', ['127.0.0.1']);
    await certsIssue(pki, 'operator', 'operator', ['operator']);
    await certsIssue(pki, 'node1', 'agent', [NODE_IP]);
    const agentPort = await freePort(NODE_IP);
    await fsp.writeFile(path.join(buildDir, 'inventory'), inventoryFor(await fsp.readFile(path.join(fixtures, 'build/mycluster/inventory'), 'utf8'), agentPort));
    await fsp.copyFile(path.join(fixtures, 'build/mycluster/manifest.yml'), path.join(buildDir, 'manifest.yml'));
    // Node, listen and TLS: nothing about the components.
    agentConfig = path.join(root, 'node1-agent.yaml');
    await fsp.writeFile(agentConfig, YAML.stringify({ node: 'node1', listen: `${NODE_IP}:${agentPort}`, state_dir: '/var/lib/lsbackup', tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'node1.crt'), key: path.join(pki, 'node1.key') } }));

    node = await bootNode('node1');
    await writeData(node);

    await startAgent();
    const coordPort = await freePort();
    const coordConfig = path.join(root, 'coordinator.yaml');
    await fsp.writeFile(coordConfig, YAML.stringify({ listen: `127.0.0.1:${coordPort}`, unencrypted: true, tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'coordinator.crt'), key: path.join(pki, 'coordinator.key') } }));
    coordinator = await spawnDaemon([process.execPath, bin.coordinator, '--config', coordConfig], 'coordinator');
    cliConfig = path.join(root, 'cli.yaml');
    await fsp.writeFile(cliConfig, YAML.stringify({ coordinator: `127.0.0.1:${coordPort}`, tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'operator.crt'), key: path.join(pki, 'operator.key') } }));
    // Prometheus needs a few scrapes to have series worth comparing.
    await waitReady('http://127.0.0.1:9090');
    await new Promise((r) => setTimeout(r, 4000));
  });

  let node4: Container | undefined;
  let agent4: ChildProcess | undefined;

  after(async () => {
    coordinator?.kill('SIGTERM');
    agent?.kill('SIGTERM');
    agent4?.kill('SIGTERM');
    await node?.stop();
    await node4?.stop();
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  let setId = '';
  let backupTime = 0;

  test('lsbackup agents says what it found on the node', async () => {
    const r = await cli(['agents', '-b', buildDir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /node1 postgresql: PostgreSQL.*\/etc\/postgresql\/15\/main/);
    assert.match(r.stdout, /node1 prometheus: Prometheus at http:\/\/127\.0\.0\.1:9090, unit \/etc\/systemd\/system\/prometheus\.service, TSDB \/var\/lib\/prometheus \(--storage\.tsdb\.path in/);
    assert.match(r.stdout, /node1 haproxy: HAProxy: \/etc\/haproxy\/haproxy\.cfg, runc container \/opt\/runc\/haproxy; config checked with the runc container's binary/);
    assert.match(r.stdout, /node1 rabbitmq: /);
    assert.match(r.stdout, /node1 kibana: Kibana: \/etc\/kibana/);
    assert.doesNotMatch(r.stdout, /alertmanager/, 'alertmanager is not enabled in manifest.yml');
    assert.match(r.stdout, /not covered by lsbackup: .*kafka: kafka1, kafka2 \(holds Kafka topics/);
  });

  test('lambdastack backup -b <build dir> gives a complete set', async () => {
    const r = await cli(['--json', 'backup', '-b', buildDir, '-t', target]);
    const res = result(r.stdout) as { status: string; backupId: string; reasons: string[]; parts: { component: string; status: string; reason: string }[] };
    assert.equal(res.status, 'complete', `${JSON.stringify(res.reasons)} ${r.stderr}`);
    assert.equal(r.code, 0);
    assert.deepEqual(res.parts.map((p) => `${p.component}:${p.status}`).sort(), ['grafana:ok', 'haproxy:ok', 'kibana:ok', 'postgresql:ok', 'prometheus:ok', 'rabbitmq:ok']);
    setId = res.backupId;
    backupTime = Date.now() / 1000 - 2;
  });

  test('every component round-trips: destroyed on the node, restored, compared', async () => {
    assert.ok(setId, 'the backup above made a set');
    const before = {
      rows: await psql('SELECT count(*), sum(id), max(item) FROM orders', 'shop'),
      role: await psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'"),
      vhosts: await node!.sh('rabbitmqctl list_vhosts --no-table-headers -q | sort'),
      users: await node!.sh('rabbitmqctl list_users --no-table-headers -q | sort'),
      policies: await node!.sh('rabbitmqctl list_policies -p orders --no-table-headers -q'),
      haproxy: await node!.sh('stat -c "%a %U %s %Y" /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem && sha256sum /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem'),
      grafana: await node!.sh('sqlite3 /var/lib/grafana/grafana.db "SELECT id, title FROM dashboard ORDER BY id"'),
      kibana: await node!.sh('stat -c "%a %U %s %Y" /etc/kibana/kibana.yml && sha256sum /etc/kibana/kibana.yml'),
      grafanaIni: await node!.sh('stat -c "%a %U %s %Y" /etc/grafana/grafana.ini && sha256sum /etc/grafana/grafana.ini'),
    };
    await psql('DROP DATABASE shop');
    await psql('DROP ROLE app');
    await node!.sh('rabbitmqctl delete_vhost orders >/dev/null && rabbitmqctl delete_user shop >/dev/null');
    // (A lost certificate that haproxy.cfg names is the disaster-recovery issue's case: the check runs against the live tree.)
    await node!.sh('echo broken > /etc/haproxy/haproxy.cfg && chmod 644 /etc/ssl/haproxy/self-signed-test.tld.pem');
    await node!.sh('sqlite3 /var/lib/grafana/grafana.db "DELETE FROM dashboard"');
    await node!.sh('rm -rf /etc/kibana /etc/grafana');
    // Prometheus loses its TSDB; Alertmanager's data beside it in /var/lib/prometheus must stay where it is.
    await node!.sh('mkdir -p /var/lib/prometheus/alertmanager && echo keep > /var/lib/prometheus/alertmanager/marker-kept-by-restore && systemctl stop prometheus && find /var/lib/prometheus -mindepth 1 -maxdepth 1 -regextype egrep -regex ".*/([0-9A-Z]{26}|wal|chunks_head)" -exec rm -rf {} + && systemctl start prometheus');

    const r = await cli(['--json', 'restore', setId, '-t', target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr);

    assert.equal(await psql('SELECT count(*), sum(id), max(item) FROM orders', 'shop'), before.rows);
    assert.equal(await psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'"), before.role);
    assert.equal(await node!.sh('rabbitmqctl list_vhosts --no-table-headers -q | sort'), before.vhosts);
    assert.equal(await node!.sh('rabbitmqctl list_users --no-table-headers -q | sort'), before.users);
    assert.equal(await node!.sh('rabbitmqctl list_policies -p orders --no-table-headers -q'), before.policies);
    assert.equal(await node!.sh('stat -c "%a %U %s %Y" /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem && sha256sum /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem'), before.haproxy);
    assert.equal(await node!.sh('sqlite3 /var/lib/grafana/grafana.db "SELECT id, title FROM dashboard ORDER BY id"'), before.grafana);
    assert.equal(await node!.sh('stat -c "%a %U %s %Y" /etc/kibana/kibana.yml && sha256sum /etc/kibana/kibana.yml'), before.kibana);
    assert.equal(await node!.sh('stat -c "%a %U %s %Y" /etc/grafana/grafana.ini && sha256sum /etc/grafana/grafana.ini'), before.grafanaIni);
    assert.equal(await node!.sh('cat /var/lib/prometheus/alertmanager/marker-kept-by-restore'), 'keep\n');
    await waitReady('http://127.0.0.1:9090');
    const up = (await (await fetch(`http://127.0.0.1:9090/api/v1/query?query=up&time=${backupTime}`)).json()) as { data: { result: unknown[] } };
    assert.ok(up.data.result.length > 0, 'the restored TSDB has the samples scraped before the backup');
  });

  test('alertmanager enabled in manifest.yml is required: missing, the set is partial; installed, it is backed up', async () => {
    const manifest = path.join(buildDir, 'manifest.yml');
    await fsp.writeFile(manifest, (await fsp.readFile(manifest, 'utf8')).replace(/(  alertmanager:\n    enable:) false/, '$1 true'));
    let r = await cli(['--json', 'backup', '-b', buildDir, '-t', target, '--component', 'alertmanager']);
    let res = result(r.stdout) as { status: string; reasons: string[] };
    assert.equal(res.status, 'failed', JSON.stringify(res));
    assert.equal(r.code, 1);
    assert.match(res.reasons.join('\n'), /node1\/alertmanager: the inventory puts alertmanager on node1, but it is not there: no Alertmanager here/);

    // As roles/prometheus installs it: alertmanager.service running /usr/local/bin/alertmanager.
    await node!.writeFile('/etc/systemd/system/alertmanager.service', await fsp.readFile(path.join(fixtures, 'node/alertmanager.service'), 'utf8'));
    await node!.writeFile('/etc/prometheus/alertmanager.yml', 'route:\n  receiver: ops\nreceivers:\n  - name: ops\n');
    await node!.sh('ln -sf /usr/bin/prometheus-alertmanager /usr/local/bin/alertmanager && mkdir -p /var/lib/prometheus/alertmanager && chown prometheus: /var/lib/prometheus/alertmanager && systemctl daemon-reload && systemctl start alertmanager');
    await waitReady('http://127.0.0.1:9093');
    r = await cli(['--json', 'backup', '-b', buildDir, '-t', target, '--component', 'alertmanager']);
    res = result(r.stdout) as { status: string; reasons: string[] };
    assert.equal(res.status, 'complete', JSON.stringify(res));
  });
  test("node1 is gone: its parts restored onto node4, a rebuilt host with another name and address, and the services answer", async () => {
    assert.ok(setId, 'the backup above made a set');
    const fileState = 'stat -c "%n %a %U %s %Y" /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem /etc/kibana/kibana.yml /etc/grafana/grafana.ini && sha256sum /etc/haproxy/haproxy.cfg /etc/ssl/haproxy/self-signed-test.tld.pem /etc/kibana/kibana.yml /etc/grafana/grafana.ini';
    const dashboards = 'sqlite3 /var/lib/grafana/grafana.db "SELECT id, title FROM dashboard ORDER BY id"';
    const expected = {
      rows: await psql('SELECT count(*), sum(id), max(item) FROM orders', 'shop'),
      role: await psql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'"),
      files: await node!.sh(fileState),
      dashboards: await node!.sh(dashboards),
    };
    // The node is lost: its agent and its machine are gone.
    agent?.kill('SIGKILL');
    await node!.stop();
    node = undefined;

    // The rebuilt host: LambdaStack's roles have run (packages, units, auth), none of the data is there.
    node4 = await bootNode('node4');
    // Debian's default haproxy.cfg, no certificate, no database, no dashboards: none of node1's data.
    assert.equal(await node4.sh('grep -c https_front /etc/haproxy/haproxy.cfg || true; test -e /etc/ssl/haproxy || echo no-certificates'), '0\nno-certificates\n');
    const pki = path.join(root, 'pki');
    await certsIssue(pki, 'node4', 'agent', [NODE4_IP]);
    const port4 = await freePort(NODE4_IP);
    const config4 = path.join(root, 'node4-agent.yaml');
    await fsp.writeFile(config4, YAML.stringify({ node: 'node4', listen: `${NODE4_IP}:${port4}`, state_dir: '/var/lib/lsbackup', tls: { ca: path.join(pki, 'ca.crt'), cert: path.join(pki, 'node4.crt'), key: path.join(pki, 'node4.key') } }));
    agent4 = await agentIn(node4, config4);
    // The inventory LambdaStack writes after the rebuild names the new host where node1 was.
    await fsp.writeFile(path.join(buildDir, 'inventory'), inventoryFor(await fsp.readFile(path.join(fixtures, 'build/mycluster/inventory'), 'utf8'), port4, 'node4', NODE4_IP));

    const components = ['postgresql', 'prometheus', 'haproxy', 'grafana', 'kibana'];
    let r = await cli(['--json', 'restore', setId, '-t', target, '--from-node', 'node1', '--node', 'node4', '-b', buildDir, '--dry-run', ...components.flatMap((c) => ['--component', c])]);
    assert.equal(r.code, 0, r.stdout.slice(-2000) + r.stderr);
    assert.match(r.stdout, new RegExp(`would restore the parts of node1 onto node4 \\(${NODE4_IP.replace(/\./g, '\\.')}:${port4}\\): `));
    r = await cli(['restore', setId, '-t', target, '--from-node', 'node1', '--node', 'node4', '-b', buildDir, ...components.flatMap((c) => ['--component', c])]);
    assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr);
    assert.match(r.stdout, /restore of node4 with the parts of node1 from \S+: ok/);
    assert.match(r.stdout, /node4\/prometheus: replaced .*the TSDB in \/var\/lib\/prometheus; rollback copy .*\/var\/lib\/lsbackup\/rollback\/\S+-prometheus-\d+ \(/);
    assert.match(r.stdout, /node4\/prometheus: to roll back, as root on node4: .*mv \/var\/lib\/lsbackup\/rollback\/\S+\/\* \/var\/lib\/prometheus\//);

    assert.equal(await psqlOn(node4, 'SELECT count(*), sum(id), max(item) FROM orders', 'shop'), expected.rows);
    assert.equal(await psqlOn(node4, "SELECT rolpassword FROM pg_authid WHERE rolname = 'app'"), expected.role);
    assert.equal(await node4.sh(fileState), expected.files);
    assert.equal(await node4.sh(dashboards), expected.dashboards);
    // The services answer: PostgreSQL above, Prometheus with the samples scraped on node1 before the backup, HAProxy's restored config and certificate.
    await waitReady('http://127.0.0.1:9090');
    const up = (await (await fetch(`http://127.0.0.1:9090/api/v1/query?query=up&time=${backupTime}`)).json()) as { data: { result: unknown[] } };
    assert.ok(up.data.result.length > 0, "node4's Prometheus has node1's samples");
    await node4.sh('/opt/runc/haproxy/rootfs/usr/local/sbin/haproxy -c -q -f /etc/haproxy/haproxy.cfg');
    await node4.sh('/opt/runc/haproxy/rootfs/usr/local/sbin/haproxy -D -p /run/haproxy-test.pid -f /etc/haproxy/haproxy.cfg');
    const status = await new Promise<number>((resolve, reject) => {
      https.get('https://127.0.0.1:19443/', { rejectUnauthorized: false }, (res) => resolve(res.statusCode ?? 0)).on('error', reject);
    });
    assert.equal(status, 503, 'HAProxy answers over TLS with the restored certificate (no backend is up)');
    await node4.sh('kill $(cat /run/haproxy-test.pid)');
  });
});
