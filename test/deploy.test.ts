/**
 * `lsbackup deploy` on a cluster of real hosts: a master and three nodes, each a systemd-nspawn
 * container with a real systemd and sshd, on loopback addresses of their own (127.0.0.50-53; the
 * containers share this machine's network), the shared location bind-mounted into all of them.
 * From a build directory shaped like LambdaStack's (its inventory groups, [all:vars] with
 * ansible_user and the SSH key, manifest.yml), the master deploys with ansible-playbook, backs up,
 * verifies, restores a broken node; the units run under systemd: the timer's service, a killed
 * agent restarted, a bad agent.yaml not restarted. A second deploy changes nothing; undeploy
 * leaves the backups and the CA.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { placeHosts } from './helpers/lambdastack-inventory.js';
import { Container, repoRoot, testRoot } from './helpers/nspawn.js';

const fixtures = path.join(repoRoot, 'test/fixtures/lambdastack');
const MASTER_IP = '127.0.0.50';
const NODES = [
  { name: 'node1', ip: '127.0.0.51', groups: ['haproxy'] },
  { name: 'node2', ip: '127.0.0.52', groups: ['postgresql'] },
  { name: 'node3', ip: '127.0.0.53', groups: ['prometheus'] },
];

/** LambdaStack's inventory with the three nodes in their groups, the other data groups emptied, the key path made real. */
const inventoryFor = (text: string, keyFile: string) =>
  placeHosts(
    text,
    NODES.map((n) => ({ line: `${n.name} ansible_host=${n.ip}`, groups: n.groups })),
    ['haproxy', 'postgresql', 'prometheus', 'grafana', 'rabbitmq', 'logging', 'kibana', 'opendistro_for_elasticsearch'],
    (line) => (line.startsWith('ansible_ssh_private_key_file=') ? `ansible_ssh_private_key_file=${keyFile}` : line),
  );

const SSHD = (ip: string) => `ListenAddress ${ip}\nPasswordAuthentication no\nPermitRootLogin no\n`;

describe('lsbackup deploy from the build directory onto hosts with a real systemd', { timeout: 30 * 60_000 }, () => {
  let root = '';
  let buildDir = '';
  let target = '';
  let master: Container | undefined;
  const nodes = new Map<string, Container>();
  const node = (name: string) => nodes.get(name)!;

  /** The operator on the master, with the CLI deploy installed. */
  const onMaster = (cmd: string) => master!.exec(['sh', '-c', `LSBACKUP_CONFIG=/etc/lsbackup/cli.yaml ${cmd}`]);
  const lsbackup = (args: string) => onMaster(`/usr/local/bin/lsbackup ${args}`);
  // The operator's keys, made off the cluster (here: outside every container); only backup-key.json goes to the master.
  const keysDir = () => path.join(root, 'operator-keys');
  const keyArgs = (verb: string) => (verb === 'deploy' ? ['--backup-key', path.join(keysDir(), 'backup-key.json')] : []);
  const deployCmd = (verb: string) => master!.exec(['/usr/bin/node', path.join(repoRoot, 'dist/cli/main.js'), verb, '-b', buildDir, '-t', target, '--coordinator-address', MASTER_IP, ...keyArgs(verb)]);
  const resultOf = (stdout: string) => (JSON.parse(stdout.trim().split('\n').at(-1)!) as { result: Record<string, unknown> }).result;

  before(async () => {
    const image = testRoot();
    // Not under /tmp: the coordinator's and the backup service's units have a private /tmp, and a
    // build directory lives elsewhere on a real master anyway (LambdaStack: /shared/build/<cluster>).
    await fsp.mkdir('/srv', { recursive: true });
    root = mkdtempSync('/srv/lsbackup-deploy-test-');
    buildDir = path.join(root, 'build/mycluster');
    target = path.join(root, 'shared/backups');
    await fsp.mkdir(target, { recursive: true, mode: 0o700 });
    const keys = spawnSync(process.execPath, [path.join(repoRoot, 'dist/cli/main.js'), 'keys', 'init', '--dir', keysDir()], { encoding: 'utf8' });
    assert.equal(keys.status, 0, `keys init: ${keys.stderr}`);
    await fsp.mkdir(path.join(buildDir, 'keys/ssh'), { recursive: true });
    const key = path.join(buildDir, 'keys/ssh/lambdastack-operations');
    const kg = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'lambdastack-operations', '-f', key]);
    assert.equal(kg.status, 0, `ssh-keygen: ${kg.stderr}`);
    await fsp.writeFile(path.join(buildDir, 'inventory'), inventoryFor(await fsp.readFile(path.join(fixtures, 'build/mycluster/inventory'), 'utf8'), key));
    await fsp.copyFile(path.join(fixtures, 'build/mycluster/manifest.yml'), path.join(buildDir, 'manifest.yml'));
    const pub = await fsp.readFile(`${key}.pub`, 'utf8');

    const binds = [root];
    // The master has what it built lsbackup with: Node.js and npm (install.sh prunes the dev packages).
    const ro: [string, string][] = [[repoRoot, repoRoot], ['/usr/bin/node', '/usr/bin/node'], ['/usr/lib/node_modules/npm', '/usr/lib/node_modules/npm']];
    master = await Container.boot(image, 'master', binds, ro);
    await master.sh(`echo '${MASTER_IP} master' >> /etc/hosts && ln -sf /usr/lib/node_modules/npm/bin/npm-cli.js /usr/bin/npm`);
    for (const n of NODES) {
      const c = await Container.boot(image, n.name, binds);
      nodes.set(n.name, c);
      // What LambdaStack's provisioning leaves: the admin user with the cluster key and sudo, sshd.
      await c.sh(`useradd -m -s /bin/bash operations && mkdir -p ~operations/.ssh && chmod 700 ~operations/.ssh`);
      await c.writeFile('/home/operations/.ssh/authorized_keys', pub, 0o600);
      await c.sh('chown -R operations: ~operations/.ssh && echo "operations ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/operations && chmod 440 /etc/sudoers.d/operations');
      await c.writeFile('/etc/ssh/sshd_config.d/lsbackup-test.conf', SSHD(n.ip));
      await c.sh(`echo '127.0.1.1 ${n.name}' >> /etc/hosts && ssh-keygen -A >/dev/null && systemctl start ssh`);
    }
    // node1: HAProxy as roles/haproxy_runc leaves it.
    await node('node1').sh('mkdir -p /opt/runc/haproxy/rootfs/usr/local/sbin && cp /usr/sbin/haproxy /opt/runc/haproxy/rootfs/usr/local/sbin/haproxy && rm -f /usr/sbin/haproxy');
    await node('node1').writeFile('/etc/haproxy/haproxy.cfg', 'global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\nlisten stats\n    bind 127.0.0.51:19000\n    stats enable\n');
    // node2: PostgreSQL with LambdaStack's peer auth.
    await node('node2').writeFile('/etc/postgresql/15/main/pg_hba.conf', 'local all all peer\nhost all all 0.0.0.0/0 md5\n', 0o640);
    await node('node2').sh("chown postgres: /etc/postgresql/15/main/pg_hba.conf && sed -i \"s/^#\\?listen_addresses.*/listen_addresses = '127.0.0.52'/\" /etc/postgresql/15/main/postgresql.conf && systemctl start postgresql@15-main");
    // Enough rows that a dump takes a moment: the kill test below catches the agent in the middle of one.
    await node('node2').sh(`runuser -u postgres -- psql -X -q -c "CREATE DATABASE shop" && runuser -u postgres -- psql -X -q -d shop -c "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 400000) g"`);
    // node3: Prometheus from LambdaStack's unit file, listening on the node's own address.
    await node('node3').writeFile('/etc/systemd/system/prometheus.service', (await fsp.readFile(path.join(fixtures, 'node/prometheus.service'), 'utf8')).replace('--web.listen-address=0.0.0.0:9090', '--web.listen-address=127.0.0.53:9090'));
    await node('node3').writeFile('/etc/prometheus/prometheus.yml', "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.53:9090']\n");
    await node('node3').sh('rm -f /lib/systemd/system/prometheus-alertmanager.service /etc/prometheus/alertmanager.yml && ln -sf /usr/bin/prometheus /usr/local/bin/prometheus && chown -R prometheus: /var/lib/prometheus && systemctl daemon-reload && systemctl start prometheus');
  });

  after(async () => {
    await Promise.all([master, ...nodes.values()].map((c) => c?.stop()));
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  let firstSet = '';

  test('deploy installs and starts every agent, the coordinator and the timer, and waits until every agent answers', async () => {
    const r = await deployCmd('deploy');
    assert.equal(r.code, 0, r.stdout.slice(-4000) + r.stderr);
    assert.match(r.stdout, /deploy: 3 agent host\(s\) from .*inventory: node1, node2, node3/);
    for (const n of NODES) {
      assert.equal((await node(n.name).exec(['systemctl', 'is-active', 'lsbackup-agent'])).stdout.trim(), 'active', n.name);
      assert.equal((await node(n.name).exec(['systemctl', 'is-enabled', 'lsbackup-agent'])).stdout.trim(), 'enabled', n.name);
      assert.equal((await node(n.name).sh(`stat -c %a /etc/lsbackup/tls/${n.name}.key /etc/lsbackup/agent.yaml`)).trim(), '600\n600');
    }
    assert.equal((await master!.exec(['systemctl', 'is-active', 'lsbackup-coordinator'])).stdout.trim(), 'active');
    // The master holds the backup key (it decrypts nothing); no host holds the identity, the agents hold no key.
    assert.equal((await master!.sh('stat -c %a /etc/lsbackup/backup-key.json')).trim(), '600');
    assert.match(await master!.sh('cat /etc/lsbackup/coordinator.yaml'), /^backup_key_file: \/etc\/lsbackup\/backup-key.json$/m);
    for (const c of [master!, ...NODES.map((n) => node(n.name))]) assert.equal((await c.sh('grep -rl AGE-SECRET-KEY /etc/lsbackup /var/lib/lsbackup 2>/dev/null || true')).trim(), '');
    for (const n of NODES) assert.equal((await node(n.name).sh('ls /etc/lsbackup/backup-key.json 2>/dev/null || true')).trim(), '', n.name);
    assert.equal((await master!.exec(['systemctl', 'is-enabled', 'lsbackup-backup.timer'])).stdout.trim(), 'enabled');
    const agents = await lsbackup(`agents -b ${buildDir}`);
    assert.equal(agents.code, 0, agents.stdout + agents.stderr);
    assert.match(agents.stdout, /node2 postgresql: PostgreSQL 15 at \/etc\/postgresql\/15\/main/);
  });

  test('a second deploy changes nothing', async () => {
    const r = await deployCmd('deploy');
    assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr);
    const recap = r.stdout.split('PLAY RECAP')[1] ?? '';
    for (const host of ['localhost', 'node1', 'node2', 'node3']) assert.match(recap, new RegExp(`${host}\\s+:\\s+ok=\\d+\\s+changed=0\\s`), `${host} in:\n${recap}`);
  });

  test('backup through the installed CLI, verify, break a node, restore it: the service is restarted by systemd', async () => {
    let r = await lsbackup(`--json backup -b ${buildDir} -t ${target}`);
    const res = resultOf(r.stdout) as { status: string; backupId: string; reasons: string[] };
    assert.equal(res.status, 'complete', JSON.stringify(res.reasons) + r.stderr);
    firstSet = res.backupId;
    r = await lsbackup(`verify ${firstSet} -t ${target}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    r = await lsbackup(`show ${firstSet} -t ${target}`);
    assert.match(r.stdout, /^encrypted to age1/m, r.stdout + r.stderr);
    const identity = `--identity ${path.join(keysDir(), 'identity.txt')}`;

    const cfgBefore = await node('node1').sh('sha256sum /etc/haproxy/haproxy.cfg; stat -c "%a %U %Y" /etc/haproxy/haproxy.cfg');
    await node('node1').sh('echo broken > /etc/haproxy/haproxy.cfg');
    r = await lsbackup(`restore ${firstSet} -t ${target} --node node1 ${identity}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await node('node1').sh('sha256sum /etc/haproxy/haproxy.cfg; stat -c "%a %U %Y" /etc/haproxy/haproxy.cfg'), cfgBefore);

    // PostgreSQL under the agent's hardened unit: the client programs switch to the postgres user.
    const psql = (sql: string) => node('node2').sh(`runuser -u postgres -- psql -X -At -d shop -c "${sql}"`);
    const rows = await psql('SELECT count(*), md5(string_agg(v, \',\' ORDER BY id)) FROM t');
    await psql('DELETE FROM t WHERE id % 2 = 0');
    r = await lsbackup(`restore ${firstSet} -t ${target} --node node2 ${identity}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await psql('SELECT count(*), md5(string_agg(v, \',\' ORDER BY id)) FROM t'), rows);

    const since = (await node('node3').sh('date +%s')).trim();
    await node('node3').sh('systemctl stop prometheus && find /var/lib/prometheus -mindepth 1 -maxdepth 1 -regextype egrep -regex ".*/([0-9A-Z]{26}|wal|chunks_head)" -exec rm -rf {} + && systemctl start prometheus');
    r = await lsbackup(`restore ${firstSet} -t ${target} --node node3 ${identity}`);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const journal = await node('node3').sh(`journalctl -u prometheus --since @${since} --no-pager -o cat`);
    assert.ok((journal.match(/Started prometheus\.service|Started Prometheus/g) ?? []).length >= 2, `prometheus started by systemd again after the restore:\n${journal}`);
  });

  test("the timer's service makes a set and says so in its journal", async () => {
    const before = (await fsp.readdir(target)).filter((n) => /^\d{8}T/.test(n));
    await new Promise((r) => setTimeout(r, 1100)); // set ids have one-second resolution
    const r = await master!.exec(['systemctl', 'start', 'lsbackup-backup.service']);
    assert.equal(r.code, 0, r.stderr + (await master!.exec(['journalctl', '-u', 'lsbackup-backup', '--no-pager', '-n', '30'])).stdout);
    const after = (await fsp.readdir(target)).filter((n) => /^\d{8}T/.test(n) && !before.includes(n));
    assert.equal(after.length, 1, `one new set: ${after.join(', ')}`);
    const manifest = JSON.parse(await fsp.readFile(path.join(target, after[0]!, 'manifest.json'), 'utf8')) as { status: string };
    assert.equal(manifest.status, 'complete');
    const journal = (await master!.exec(['journalctl', '-u', 'lsbackup-backup', '--no-pager', '-o', 'cat'])).stdout;
    assert.match(journal, new RegExp(`backup ${after[0]} complete`));
  });

  test('an agent killed by systemctl kill during a backup: the set is partial, systemd restarts it, the next backup is complete', async () => {
    const pid = (await node('node2').sh('systemctl show -p MainPID --value lsbackup-agent')).trim();
    const running = lsbackup(`--json backup -b ${buildDir} -t ${target}`);
    // The agent holds its lock file for as long as it backs up: seen through the container's root.
    const lock = `/proc/${node('node2').pid}/root/var/lib/lsbackup/agent.lock`;
    for (let i = 0; i < 1000 && !(await fsp.stat(lock).then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 10));
    // Inside nspawn systemd may fail to signal the unit's other processes (EIO from the cgroup),
    // so the exit status says little: what counts is that the agent died and systemd restarted it.
    await node('node2').exec(['systemctl', 'kill', '-s', 'KILL', 'lsbackup-agent']);
    const r = await running;
    const res = resultOf(r.stdout) as { status: string; reasons: string[] };
    assert.notEqual(res.status, 'complete', JSON.stringify(res));
    assert.match(res.reasons.join('\n'), /node2/);
    assert.notEqual((await node('node2').sh('systemctl show -p MainPID --value lsbackup-agent')).trim(), pid, 'the agent was killed');
    for (let i = 0; i < 60; i++) {
      const now = (await node('node2').sh('systemctl show -p MainPID --value lsbackup-agent')).trim();
      if (now !== '0' && now !== pid && (await node('node2').exec(['systemctl', 'is-active', 'lsbackup-agent'])).stdout.trim() === 'active') break;
      await new Promise((res2) => setTimeout(res2, 500));
    }
    let again = await lsbackup(`--json backup -b ${buildDir} -t ${target}`);
    for (let i = 0; i < 10 && (resultOf(again.stdout) as { status: string }).status !== 'complete'; i++) {
      await new Promise((res2) => setTimeout(res2, 1000));
      again = await lsbackup(`--json backup -b ${buildDir} -t ${target}`);
    }
    assert.equal((resultOf(again.stdout) as { status: string }).status, 'complete', again.stdout.slice(-2000));
  });

  test('a bad agent.yaml: exit 2, one journal line naming the file and key, and systemd does not restart it', async () => {
    const n1 = node('node1');
    await n1.sh("cp /etc/lsbackup/agent.yaml /root/agent.yaml.good && echo 'compression_level: eleven' >> /etc/lsbackup/agent.yaml");
    const since = (await n1.sh('date +%s')).trim();
    await n1.exec(['systemctl', 'restart', 'lsbackup-agent']);
    await new Promise((r) => setTimeout(r, 7000)); // RestartSec=5s: a restart would have happened by now
    const show = await n1.sh('systemctl show -p ActiveState,Result,ExecMainStatus,NRestarts lsbackup-agent');
    assert.match(show, /ExecMainStatus=2/);
    assert.match(show, /ActiveState=failed/);
    assert.match(show, /NRestarts=0/);
    const journal = await n1.sh(`journalctl -u lsbackup-agent --since @${since} --no-pager -o cat | grep -F agent.yaml`);
    assert.equal(journal.trim().split('\n').length, 1, journal);
    assert.match(journal, /\/etc\/lsbackup\/agent\.yaml.*compression_level/);
    await n1.sh('cp /root/agent.yaml.good /etc/lsbackup/agent.yaml && systemctl reset-failed lsbackup-agent && systemctl start lsbackup-agent');
  });

  test('an upgrade restarts the agents one host at a time, and not while a backup holds an agent', async () => {
    // A bundle that differs on every host is what a new version looks like to the playbook.
    for (const n of NODES) await node(n.name).sh('rm -f /var/cache/lsbackup/lsbackup.tgz');
    const since = (await master!.sh('date +%s')).trim();
    // node2 is busy: its agent lock names a live process, as during a long backup.
    await node('node2').sh('setsid sleep 600 >/dev/null 2>&1 & echo "{\\"pid\\":$!,\\"host\\":\\"node2\\",\\"what\\":\\"backup\\"}" > /var/lib/lsbackup/agent.lock');
    const deploying = master!.spawn(['/usr/bin/node', path.join(repoRoot, 'dist/cli/main.js'), 'deploy', '-b', buildDir, '-t', target, '--coordinator-address', MASTER_IP, ...keyArgs('deploy')]);
    let out = '';
    const done = new Promise<number>((resolve) => deploying.on('close', (code) => resolve(code ?? 1)));
    deploying.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    // Once the playbook is at the wait, give it time it would need to restart node2 if it did not wait.
    await new Promise<void>((resolve) => deploying.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('TASK [wait until no backup or restore runs on this agent]')) resolve();
    }));
    await new Promise((r) => setTimeout(r, 15_000));
    const busyUntil = Number((await node('node2').sh('date +%s')).trim());
    await node('node2').sh('kill $(sed -n "s/.*\\"pid\\":\\([0-9]*\\).*/\\1/p" /var/lib/lsbackup/agent.lock) && rm -f /var/lib/lsbackup/agent.lock');
    const d = { code: await done, stdout: out, stderr: '' };
    assert.equal(d.code, 0, d.stdout.slice(-3000));
    const windows: { host: string; stop: number; start: number }[] = [];
    for (const n of NODES) {
      const j = await node(n.name).sh(`journalctl -u lsbackup-agent --since @${since} --no-pager -o short-unix`);
      const stop = j.split('\n').find((l) => /Stopping lsbackup-agent\.service|Stopping lsbackup agent/.test(l));
      const start = j.split('\n').reverse().find((l) => /Started lsbackup-agent\.service|Started lsbackup agent/.test(l));
      assert.ok(stop && start, `${n.name} was restarted:\n${j}`);
      windows.push({ host: n.name, stop: Number(stop.split(' ')[0]), start: Number(start.split(' ')[0]) });
    }
    windows.sort((x, y) => x.stop - y.stop);
    for (let i = 1; i < windows.length; i++) assert.ok(windows[i]!.stop >= windows[i - 1]!.start, `restarts overlap: ${JSON.stringify(windows)}`);
    const node2 = windows.find((w) => w.host === 'node2')!;
    assert.ok(node2.stop >= busyUntil - 1, `node2 restarted at ${node2.stop}, while it was busy until ${busyUntil}`);
    const agents = await lsbackup(`agents -b ${buildDir}`);
    assert.equal(agents.code, 0, agents.stdout + agents.stderr);
  });

  test('undeploy removes units, program and configs; the backups and the CA stay', async () => {
    const sets = (await fsp.readdir(target)).sort();
    const r = await deployCmd('undeploy');
    assert.equal(r.code, 0, r.stdout.slice(-3000) + r.stderr);
    for (const n of NODES) {
      const left = await node(n.name).sh('ls -d /etc/systemd/system/lsbackup-agent.service /opt/lsbackup /usr/local/bin/lsbackup-agent /etc/lsbackup/agent.yaml /etc/lsbackup/tls 2>/dev/null || true');
      assert.equal(left.trim(), '', `${n.name} still has ${left}`);
      assert.notEqual((await node(n.name).exec(['systemctl', 'is-active', 'lsbackup-agent'])).stdout.trim(), 'active');
    }
    assert.equal((await master!.sh('ls /etc/systemd/system/ | grep -c lsbackup || true')).trim(), '0');
    assert.match(await master!.sh('ls /etc/lsbackup/pki'), /ca\.crt/);
    assert.deepEqual((await fsp.readdir(target)).sort(), sets);
  });
});
