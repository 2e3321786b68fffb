/**
 * Many nodes (issue 13): 200 simulated agents (real agent servers in a child process, see
 * test/helpers/sim-agents.ts), a real coordinator process and the real CLI, over mutual TLS, with
 * LambdaStack's inventory holding all 200 hosts in the haproxy group.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp, readdirSync } from 'node:fs';
import path from 'node:path';
import { DemoCluster } from '../demo/cluster.js';
import { loadEntries } from '../common/entries-file.js';
import { readManifest, setDir } from '../common/manifest.js';
import { readPartRecord } from '../common/part-record.js';
import { commitSet } from '../common/commit.js';
import { SimCluster } from './helpers/sim-agents.js';

const NODES = 200;

/** The coordinator's open file descriptors: one socket per open agent channel, plus its own files. */
function openFds(c: SimCluster): number {
  return readdirSync(`/proc/${c.coordinator!.pid}/fd`).length;
}

interface Summary {
  backupId: string;
  status: string;
  reasons: string[];
  parts: { node: string; component: string; status: string; reason: string }[];
}

describe(`${NODES} simulated agents: one backup through the real coordinator and CLI`, { timeout: 10 * 60_000 }, () => {
  let c: SimCluster;
  let complete = '';

  before(async () => {
    c = await SimCluster.create(NODES);
    await c.startAgents();
    await c.startCoordinator();
  });
  after(async () => {
    await c?.stop();
    await c?.remove();
  });

  test(`the set is committed complete with ${NODES} parts, each one its node's record and files`, async () => {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
    assert.equal(r.code, 0, (r.stderr + r.stdout).slice(-3000));
    const s = DemoCluster.result<Summary>(r.stdout);
    complete = s.backupId;
    assert.equal(s.status, 'complete', s.reasons.join('\n'));
    assert.equal(s.parts.length, NODES);

    const m = await readManifest(c.target, s.backupId);
    assert.equal(m.status, 'complete');
    assert.deepEqual(Object.keys(m.nodes).sort(), c.nodes.map((n) => n.name).sort());
    assert.deepEqual(m.parts.map((p) => p.node).sort(), c.nodes.map((n) => n.name).sort());
    const dir = setDir(c.target, s.backupId);
    for (const n of c.nodes) {
      const p = m.parts.find((x) => x.node === n.name)!;
      assert.equal(p.component, 'haproxy');
      assert.equal(p.status, 'ok', p.reason);
      assert.ok(p.record, `${n.name}: the manifest names its record`);
      // The record on the shared location is the one the manifest names, and says what the manifest says.
      const back = await readPartRecord(dir, p.record, p);
      assert.deepEqual({ ...back, external: undefined }, { ...p, external: undefined });
      assert.deepEqual(p.artifacts.map((a) => a.kind).sort(), ['tree']);
      // Its entries are this node's files: every node's haproxy.cfg names its own address.
      const entries = await loadEntries(dir, p);
      assert.equal(entries.length, p.entryCount);
      const cfg = entries.find((e) => e.path === path.join(n.root, 'etc/haproxy/haproxy.cfg'));
      assert.ok(cfg, `${n.name}: haproxy.cfg is in its entries`);
      const text = await fsp.readFile(cfg.path);
      assert.equal(cfg.sha256, createHash('sha256').update(text).digest('hex'));
      assert.ok(text.toString().includes(`server ${n.name} ${n.ip}:8080`));
    }
  });

  test('verify reads every part of the set; list and show describe it', async () => {
    assert.ok(complete, 'the complete backup ran');
    const v = await c.cli(['--json', 'verify', complete, '-t', c.target]);
    assert.equal(v.code, 0, (v.stderr + v.stdout).slice(-3000));
    assert.equal(DemoCluster.result<{ status: string }>(v.stdout).status, 'ok');

    const l = await c.cli(['--json', 'list', '-t', c.target]);
    assert.equal(l.code, 0, l.stderr);
    const set = DemoCluster.result<{ backupId: string; status: string; nodes: string[] }[]>(l.stdout).find((x) => x.backupId === complete);
    assert.equal(set?.status, 'complete');
    assert.equal(set?.nodes.length, NODES);

    const sh = await c.cli(['show', complete, '-t', c.target]);
    assert.equal(sh.code, 0, sh.stderr);
    assert.match(sh.stdout, new RegExp(`in ${NODES} parts`));
    for (const n of [c.nodes[0]!, c.nodes.at(-1)!]) assert.match(sh.stdout, new RegExp(`^${n.name}\\s+haproxy\\s+ok`, 'm'));
  });

  test('a set of 10,000 parts, whose manifest is over gRPC\'s 4 MiB, is listed and shown', async () => {
    assert.ok(complete, 'the complete backup ran');
    // 200 nodes of 50 components each, as far as the manifest can tell: the parts of the set
    // that was backed up, each copied under 50 names, committed as the coordinator commits.
    const m = await readManifest(c.target, complete);
    const id = '20200101T000000Z';
    const dir = setDir(c.target, id);
    await fsp.mkdir(dir, { mode: 0o700 });
    const parts = m.parts.flatMap((p) =>
      Array.from({ length: 50 }, (_, k) => {
        const node = `${p.node}-${k}`;
        return { ...p, node, artifacts: p.artifacts.map((a) => ({ ...a, path: a.path.replace(`${p.node}/`, `${node}/`) })), record: p.record && { ...p.record, path: p.record.path.replace(`${p.node}/`, `${node}/`) } };
      }),
    );
    const nodes = Object.fromEntries(parts.map((p) => [p.node, { address: '127.0.0.1:1' }]));
    await commitSet(dir, m.format, { id, startedAt: m.startedAt, buildDir: m.buildDir, nodes, notCovered: m.notCovered }, parts);
    // Show sends it without indentation.
    assert.ok(JSON.stringify(JSON.parse(await fsp.readFile(path.join(dir, 'manifest.json'), 'utf8'))).length > 4 * 1024 * 1024);
    try {
      const sh = await c.cli(['--json', 'show', id, '-t', c.target]);
      assert.equal(sh.code, 0, sh.stderr);
      assert.equal(DemoCluster.result<{ parts: unknown[] }>(sh.stdout).parts.length, 10_000);
      const l = await c.cli(['list', '-t', c.target]);
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, new RegExp(`^${id}\\s+complete`, 'm'));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  test('one agent stopped and one that fails: a partial set that names both, the others ok', async () => {
    const stopped = c.nodes[6]!;
    const failing = c.nodes[12]!;
    const stateDir = path.join(c.root, 'state', failing.name);
    await c.stopAgent(stopped.name);
    // The agent cannot take its lock: its backup call fails with an error, as an agent with a broken state_dir does.
    await fsp.rename(stateDir, `${stateDir}.away`);
    await fsp.writeFile(stateDir, 'not a directory');
    try {
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      assert.equal(r.code, 1, (r.stderr + r.stdout).slice(-3000));
      const s = DemoCluster.result<Summary>(r.stdout);
      assert.equal(s.status, 'partial');
      assert.equal(s.reasons.length, 2, s.reasons.join('\n'));
      assert.ok(s.reasons.some((x) => x.startsWith(`${stopped.name}/haproxy: `) && x.includes(`${stopped.ip}:${c.agentPort}`) && x.includes('unreachable')), s.reasons.join('\n'));
      assert.ok(s.reasons.some((x) => x.startsWith(`${failing.name}/haproxy: `)), s.reasons.join('\n'));
      const m = await readManifest(c.target, s.backupId);
      assert.equal(m.status, 'partial');
      assert.equal(m.parts.length, NODES);
      const failed = m.parts.filter((p) => p.status !== 'ok').map((p) => p.node).sort();
      assert.deepEqual(failed, [stopped.name, failing.name].sort());
      // Before this backup every agent cleaned up after the first one (agent/recovery.ts): what
      // that set's manifest lists, its part records too, is still there.
      const v = await c.cli(['--json', 'verify', complete, '-t', c.target]);
      assert.equal(v.code, 0, (v.stderr + v.stdout).slice(-3000));
    } finally {
      await fsp.rm(stateDir, { force: true });
      await fsp.rename(`${stateDir}.away`, stateDir);
      await c.startAgent(stopped.name);
    }
  });

  // The coordinator keeps its channels to the agents from one backup to the next (common/proto.ts
  // agentChannelOptions): every backup in this file after the first runs on them.
  test('on the same coordinator, a restarted agent is reached by the next backup, and one that went away neither hangs it nor leaks', async () => {
    const restarted = c.nodes[20]!;
    const gone = c.nodes[30]!;
    const backup = async () => {
      const t0 = Date.now();
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      return { r, s: DemoCluster.result<Summary>(r.stdout), ms: Date.now() - t0 };
    };
    const warm = await backup();
    assert.equal(warm.r.code, 0, (warm.r.stderr + warm.r.stdout).slice(-3000));
    const fds = openFds(c);
    assert.ok(fds >= NODES, `the coordinator holds ${fds} descriptors: its channels to the ${NODES} agents are open`);

    // A new server on the same address: the connection the coordinator holds to it is closed.
    await c.stopAgent(restarted.name);
    await c.startAgent(restarted.name);
    const again = await backup();
    assert.equal(again.r.code, 0, (again.r.stderr + again.r.stdout).slice(-3000));
    assert.equal(again.s.parts.find((p) => p.node === restarted.name)?.status, 'ok');

    await c.stopAgent(gone.name);
    try {
      const partial = await backup();
      assert.equal(partial.r.code, 1, (partial.r.stderr + partial.r.stdout).slice(-3000));
      assert.equal(partial.s.status, 'partial');
      assert.deepEqual(partial.s.reasons.map((x) => x.split(':')[0]), [`${gone.name}/haproxy`]);
      assert.match(partial.s.reasons[0]!, /unreachable/);
      // Bounded: no longer than a complete backup and the Info deadline (agent_timeout_s, 10 s) twice over.
      assert.ok(partial.ms < 2 * warm.ms + 20_000, `the backup without ${gone.name} took ${partial.ms} ms, a complete one ${warm.ms} ms`);
    } finally {
      await c.startAgent(gone.name);
    }
    const back = await backup();
    assert.equal(back.r.code, 0, (back.r.stderr + back.r.stdout).slice(-3000));
    assert.equal(back.s.parts.find((p) => p.node === gone.name)?.status, 'ok');
    // One channel per agent still: none was left behind by the restart or the agent that went away.
    const after = openFds(c);
    assert.ok(after <= fds + 5, `the coordinator held ${fds} descriptors before, ${after} after`);
  });
});
