/**
 * The case a backup exists for: a node that is gone. Through the CLI, coordinator and agents:
 * a node that lost every file its components name gets all of them back (HAProxy's check sees
 * the set's certificates and error files, not the empty live tree); a config invalid even with
 * all of its files is still refused; a replacement host with another name and address receives
 * the old node's parts; a read-only target is restored from without a byte written to it; an
 * agent killed mid-restore and started again completes the next restore exactly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { DemoCluster, type DemoNode } from '../demo/cluster.js';
import { cliWatching } from './helpers/ops.js';
import { openDb } from './helpers/grafana-db.js';
import { treesState } from './helpers/tree-state.js';

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
  parts: { node: string; component: string; status: string; reason: string; meta: Record<string, string> }[];
}

/**
 * haproxy.cfg naming files by absolute path: error files (as Debian's default config does) and, as
 * LambdaStack's `https_front` does, a certificate under /etc/ssl/haproxy (here under the node's sandbox).
 */
function haproxyCfg(root: string, extra = ''): string {
  return `global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    errorfile 400 ${root}/etc/haproxy/errors/400.http
    errorfile 503 ${root}/etc/haproxy/errors/503.http
${extra}
frontend https_front
    bind 127.0.0.1:19443 ssl crt ${root}/etc/ssl/haproxy/cluster.pem
    default_backend app

backend app
    server a1 127.0.0.1:8080
`;
}

/** A real certificate and key in one PEM, as HAProxy's `crt` wants it. */
function certificatePem(dir: string): string {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem'), '-days', '30', '-subj', '/CN=lb.test'], { stdio: 'ignore' });
  return execFileSync('cat', [path.join(dir, 'c.pem'), path.join(dir, 'k.pem')]).toString();
}

const pathsOf = (n: DemoNode) => ['etc/haproxy', 'etc/ssl/haproxy', 'var/lib/grafana'].map((p) => path.join(n.root, p));

/** The keys whose values differ, for a failure message that shows what did not come back. */
function differences(a: Map<string, string>, b: Map<string, string>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => a.get(k) !== b.get(k)).map((k) => `${k}: ${a.get(k) ?? '(none)'} -> ${b.get(k) ?? '(none)'}`);
}

/**
 * Every path of the roots, exactly; Grafana's database by its rows (a consistent copy of a live
 * SQLite file is not byte-identical to it), and without its rendered-image cache, which the
 * backup leaves out by design.
 */
async function stateOf(roots: string[]): Promise<Map<string, string>> {
  const all = await treesState(roots);
  for (const k of [...all.keys()]) {
    if (/\/var\/lib\/grafana\/png(\/|$)/.test(k)) all.delete(k);
    if (k.endsWith('/var/lib/grafana/grafana.db')) {
      const db = openDb(k, { readonly: true });
      all.set(k, `${all.get(k)!.split(' ').slice(0, 3).join(' ')} rows ${JSON.stringify(db.prepare('SELECT * FROM dashboard ORDER BY id').all())}`);
      db.close();
    }
  }
  return all;
}

async function sameTrees(before: Map<string, string>, roots: string[]): Promise<void> {
  assert.deepEqual(differences(before, await stateOf(roots)), []);
}

describe('disaster recovery: rebuilt and replacement nodes, through the CLI', { timeout: 10 * 60_000 }, () => {
  let c: DemoCluster;
  let n1: DemoNode;
  let n2: DemoNode;
  let n4: DemoNode;

  before(async () => {
    c = await DemoCluster.create({ nodes: 4, groups: [['haproxy', 'grafana'], ['haproxy'], ['kibana'], ['kibana']] });
    [n1, n2, , n4] = [c.nodes[0]!, c.nodes[1]!, c.nodes[2]!, c.nodes[3]!];
    // node4 is the replacement host for node1: another name and address, the same paths (here
    // node1's sandbox, as a rebuilt machine has the same /etc and /var/lib).
    const cfg = YAML.parse(await fsp.readFile(n4.configFile, 'utf8')) as { components: Record<string, unknown> };
    const r = (p: string) => path.join(n1.root, p);
    cfg.components.haproxy = { paths: [r('etc/haproxy'), r('etc/ssl/haproxy')], config_file: r('etc/haproxy/haproxy.cfg') };
    cfg.components.grafana = { data_dir: r('var/lib/grafana'), config_paths: [], stop_command: ['true'], start_command: ['true'] };
    await fsp.writeFile(n4.configFile, YAML.stringify(cfg));

    const pem = certificatePem(c.root);
    for (const n of [n1, n2]) {
      await fsp.writeFile(path.join(n.root, 'etc/haproxy/haproxy.cfg'), haproxyCfg(n.root));
      await fsp.writeFile(path.join(n.root, 'etc/haproxy/errors/400.http'), 'HTTP/1.0 400 Bad request\r\nContent-Type: text/plain\r\n\r\nbad request\n');
      await fsp.writeFile(path.join(n.root, 'etc/ssl/haproxy/cluster.pem'), pem, { mode: 0o600 });
      execFileSync('touch', ['-h', '-d', '@1700000000.123456789', path.join(n.root, 'etc/haproxy/errors/400.http')]);
    }
    await c.start();
  });

  after(async () => {
    await c?.stop();
    await c?.remove();
  });

  async function backup(node: string): Promise<string> {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, '--node', node]);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.equal(s.status, 'complete', s.reasons.join('\n'));
    return s.backupId;
  }

  test('a node that lost every file of its components gets all of them back, and is told what was replaced and how to roll back', async () => {
    const id = await backup('node1');
    const before = await stateOf(pathsOf(n1));
    for (const p of pathsOf(n1)) await fsp.rm(p, { recursive: true, force: true });

    const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await sameTrees(before, pathsOf(n1));
    assert.match(r.stdout, /node1\/haproxy: replaced \d+ entries in .*etc\/haproxy, .*etc\/ssl\/haproxy; rollback copy .*\/rollback\/\S+ \(/);
    assert.match(r.stdout, /node1\/haproxy: to roll back, as root on node1: rm -rf /);
    assert.match(r.stdout, /node1\/grafana: restarted Grafana/);
    // A root the node had lost is removed again by the roll-back command, not copied from nowhere.
    const how = /node1\/haproxy: to roll back, as root on node1: (.*)/.exec(r.stdout)![1]!;
    assert.doesNotMatch(how, /cp -a/, 'nothing existed to roll back to');
  });

  test('the roll-back command printed after a restore puts back what the restore replaced', async () => {
    const id = await backup('node1');
    const cfgFile = path.join(n1.root, 'etc/haproxy/haproxy.cfg');
    await fsp.writeFile(cfgFile, haproxyCfg(n1.root, '    # changed after the backup'));
    const changed = await stateOf(pathsOf(n1).slice(0, 2));
    const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1', '--component', 'haproxy']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.doesNotMatch(await fsp.readFile(cfgFile, 'utf8'), /changed after the backup/);
    const how = /node1\/haproxy: to roll back, as root on node1: (.*)/.exec(r.stdout)?.[1];
    assert.ok(how, r.stdout);
    execFileSync('sh', ['-c', how]);
    await sameTrees(changed, pathsOf(n1).slice(0, 2));
  });

  test('a config that is invalid even with all of the set\'s files is refused, and nothing is replaced', async () => {
    const cfgFile = path.join(n2.root, 'etc/haproxy/haproxy.cfg');
    const good = await fsp.readFile(cfgFile, 'utf8');
    await fsp.writeFile(cfgFile, haproxyCfg(n2.root, `    errorfile 404 ${n2.root}/etc/haproxy/errors/404.http`));
    const id = await backup('node2');
    await fsp.writeFile(cfgFile, good);
    const before = await stateOf(pathsOf(n2).slice(0, 2));
    const r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node2']);
    assert.equal(r.code, 1, r.stdout.slice(-1500));
    const s = DemoCluster.result<Summary>(r.stdout);
    assert.match(s.reasons.join('\n'), /node2\/haproxy: restored .*haproxy\.cfg does not pass 'haproxy -c .*404\.http.*nothing was replaced/);
    await sameTrees(before, pathsOf(n2).slice(0, 2));
  });

  test('a read-only target is restored from and verified, and not a byte of it changes', async () => {
    const id = await backup('node1');
    const before = await stateOf(pathsOf(n1));
    await fsp.rm(path.join(n1.root, 'etc/ssl/haproxy'), { recursive: true });
    const targetBefore = await treesState([c.target]);
    execFileSync('mount', ['--bind', c.target, c.target]);
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', c.target]);
      await assert.rejects(fsp.writeFile(path.join(c.target, 'probe'), ''), /EROFS/);
      const r = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const v = await c.cli(['verify', id, '-t', c.target]);
      assert.equal(v.code, 0, v.stderr + v.stdout);
    } finally {
      execFileSync('umount', [c.target]);
    }
    await sameTrees(before, pathsOf(n1));
    assert.deepEqual(differences(targetBefore, await treesState([c.target])), []);
  });

  test("an agent killed mid-restore and started again completes the next restore: the node is exactly as backed up", async () => {
    const big = path.join(n1.root, 'etc/haproxy/big.map');
    const fh = await fsp.open(big, 'w');
    for (let i = 0; i < 64; i++) await fh.write(Buffer.alloc(4 << 20, i + 1));
    await fh.close();
    const id = await backup('node1');
    const before = await stateOf(pathsOf(n1));
    for (const p of pathsOf(n1)) await fsp.rm(p, { recursive: true, force: true });

    let killed = false;
    const r = await cliWatching(c, ['restore', id, '-t', c.target, '--node', 'node1'], (ev) => {
      if (!killed && ev.component === 'haproxy' && ev.phase === 'running' && ev.bytesDone > 0) {
        killed = true;
        n1.process!.kill('SIGKILL');
      }
    });
    assert.ok(killed, 'killed while extracting');
    assert.equal(r.code, 1);
    const p = n1.process!;
    if (p.exitCode === null && p.signalCode === null) await new Promise((res) => p.once('exit', res));
    await c.startAgent(n1);
    const again = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    await sameTrees(before, pathsOf(n1));
    await fsp.rm(big);
  });

  test("node1's parts restored onto node4, a replacement host with another name and address", async () => {
    const id = await backup('node1');
    const before = await stateOf(pathsOf(n1));
    // node1 is gone: its agent does not answer, its files are lost.
    await c.killAgent(n1);
    for (const p of pathsOf(n1)) await fsp.rm(p, { recursive: true, force: true });
    try {
      let r = await c.cli(['restore', id, '-t', c.target, '--node', 'node4', '--from-node', 'node1']);
      assert.equal(r.code, 2, r.stderr + r.stdout);
      assert.match(r.stderr, /restoring onto another node needs -b <build_dir> with node4 in its inventory/);

      r = await c.cli(['--json', 'restore', id, '-t', c.target, '--node', 'node4', '--from-node', 'node1', '-b', c.buildDir, '--dry-run']);
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
      assert.match(r.stdout, new RegExp(`would restore the parts of node1 onto node4 \\(${n4.ip.replace(/\./g, '\\.')}:${n4.port}\\): grafana, haproxy`));
      assert.equal(await fsp.stat(pathsOf(n1)[0]!).catch(() => 'absent'), 'absent', 'a dry run writes nothing');

      r = await c.cli(['restore', id, '-t', c.target, '--node', 'node4', '--from-node', 'node1', '-b', c.buildDir]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /restore of node4 with the parts of node1 from \S+: ok/);
      assert.match(r.stdout, /node4\/haproxy: to roll back, as root on node4: /);
      await sameTrees(before, pathsOf(n1));
    } finally {
      await c.startAgent(n1);
    }
  });
  describe('a restore cancelled while it runs', () => {
    let id = '';
    let untouched = new Map<string, string>();
    const big = () => path.join(n1.root, 'etc/haproxy/big.map');

    before(async () => {
      // Big enough that extracting it takes longer than the cancel takes to arrive.
      const fh = await fsp.open(big(), 'w');
      for (let i = 0; i < 128; i++) await fh.write(Buffer.alloc(4 << 20, i + 1));
      await fh.close();
      id = await backup('node1');
      // After the backup: HAProxy's files and a dashboard change, so old and new can be told apart.
      await fsp.writeFile(path.join(n1.root, 'etc/haproxy/haproxy.cfg'), haproxyCfg(n1.root, '    # changed after the backup'));
      await fsp.rm(big());
      await fsp.writeFile(path.join(n1.root, 'var/lib/grafana/dashboards/cluster.json'), '{"title":"changed after the backup"}');
      untouched = await stateOf(pathsOf(n1).slice(0, 2));
    });

    async function cancelledRun(cancel: (cli: ChildProcess) => void): Promise<{ code: number; stdout: string; stderr: string }> {
      let sent = false;
      const r = await cliWatching(c, ['restore', id, '-t', c.target, '--node', 'node1'], (ev, cli) => {
        if (!sent && ev.component === 'haproxy' && ev.phase === 'running' && ev.bytesDone > 0) {
          sent = true;
          cancel(cli);
        }
      });
      assert.ok(sent, 'cancelled while HAProxy was being extracted');
      return r;
    }

    function checkOutcome(r: { code: number; stdout: string; stderr: string }): void {
      assert.equal(r.code, 1, r.stderr + r.stdout.slice(-2000));
      const s = DemoCluster.result<Summary>(r.stdout);
      assert.equal(s.status, 'cancelled', JSON.stringify(s.reasons));
      assert.deepEqual(s.parts.map((p) => `${p.component}:${p.status}`), ['grafana:ok', 'haproxy:cancelled']);
      assert.match(s.reasons.join('\n'), /node1\/haproxy: cancelled before anything of node1\/haproxy was replaced: the node has its old files/);
    }

    test('lsbackup cancel: the component being restored keeps all of its old files, the one before has all of its new, and the result says which', async () => {
      const r = await cancelledRun(() => {
        void c.cli(['cancel', '-t', c.target]).then((x) => assert.match(x.stdout, /asked to stop: restore of node1 from /, x.stderr));
      });
      checkOutcome(r);
      assert.deepEqual(differences(untouched, await stateOf(pathsOf(n1).slice(0, 2))), [], 'HAProxy exactly as before the restore, directory times included');
      assert.match(await fsp.readFile(path.join(n1.root, 'var/lib/grafana/dashboards/cluster.json'), 'utf8'), /"Cluster"/, 'Grafana restored');
      const none = await c.cli(['cancel', '-t', c.target]);
      assert.equal(none.code, 1);
      assert.match(none.stdout, /no restore is running on /);
    });

    test('Ctrl-C on the CLI asks for the same stop and waits for the result; the restore run again completes', async () => {
      const r = await cancelledRun((cli) => cli.kill('SIGINT'));
      assert.match(r.stderr, /cancelling: the restore stops at its next safe point/);
      checkOutcome(r);
      assert.deepEqual(differences(untouched, await stateOf(pathsOf(n1).slice(0, 2))), []);
      const again = await c.cli(['restore', id, '-t', c.target, '--node', 'node1']);
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.ok(existsSync(big()), 'the second restore put everything back');
      await fsp.rm(big());
    });
  });
});
