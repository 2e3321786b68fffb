/**
 * Operations: retention and comparison through the CLI against a live demo cluster, and how the
 * daemons report a bad config. Older sets are made by copying a real committed set to an older id
 * (the manifest's id rewritten), so prune sees days, weeks and grace periods without waiting.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { snapshotNameOf } from '../agent/components/elasticsearch/index.js';
import { DemoCluster, bin, freePort } from '../demo/cluster.js';
import { FakeEs, makePki } from './helpers/es-server.js';
import { dropCluster, startCluster, tempDir } from './helpers/harness.js';
import { fabricateIncomplete, fabricateSet, idAt, run, setIds, whileDown } from './helpers/ops.js';

interface Summary {
  backupId: string;
  status: string;
}
interface PruneResult {
  removed: string[];
  kept: string[];
  reasons: string[];
  held: string[];
}
interface Change {
  change: string;
  node: string;
  component: string;
  path: string;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Noon (or `h` o'clock) UTC, `k` days before today. */
function dayAt(k: number, h = 12): string {
  const midnight = new Date();
  midnight.setUTCHours(0, 0, 0, 0);
  return idAt(new Date(midnight.getTime() - k * DAY + h * HOUR));
}
const sorted = (a: string[]) => [...a].sort();

describe('prune, delete and diff through the CLI', () => {
  let c: DemoCluster;
  let a = '';
  let b = '';
  const n1 = () => c.nodes[0]!.root;

  async function backup(args: string[] = []): Promise<Summary & { code: number }> {
    const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target, ...args]);
    const s = DemoCluster.result<Summary>(r.stdout);
    return { ...s, code: r.code };
  }
  async function prune(args: string[]): Promise<PruneResult & { code: number; stderr: string }> {
    const r = await c.cli(['--json', 'prune', '-t', c.target, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return { ...DemoCluster.result<PruneResult>(r.stdout), code: r.code, stderr: r.stderr };
  }

  before(async () => {
    c = await startCluster({ nodes: 2, groups: [['haproxy', 'kibana'], ['haproxy']] });
  });

  after(async () => {
    await dropCluster(c);
  });

  test('diff names the files added, changed and removed on a node between two backups', async () => {
    const s1 = await backup();
    assert.equal(s1.code, 0);
    a = s1.backupId;
    await fsp.appendFile(path.join(n1(), 'etc/haproxy/haproxy.cfg'), '# maxconn raised\n');
    await fsp.writeFile(path.join(n1(), 'etc/haproxy/errors/504.http'), 'HTTP/1.0 504 Gateway Timeout\r\n\r\n');
    await fsp.rm(path.join(n1(), 'etc/haproxy/errors/503.http'));
    await fsp.chmod(path.join(n1(), 'etc/kibana/kibana.yml'), 0o600); // same bytes, new mode
    const s2 = await backup();
    assert.equal(s2.code, 0);
    b = s2.backupId;
    assert.notEqual(a, b);

    const abs = (rel: string) => path.join(n1(), rel);
    const expected: Change[] = [
      { change: 'added', node: 'node1', component: 'haproxy', path: abs('etc/haproxy/errors/504.http') },
      { change: 'removed', node: 'node1', component: 'haproxy', path: abs('etc/haproxy/errors/503.http') },
      { change: 'changed', node: 'node1', component: 'haproxy', path: abs('etc/haproxy/haproxy.cfg') },
      { change: 'changed', node: 'node1', component: 'kibana', path: abs('etc/kibana/kibana.yml') },
    ];
    const key = (x: Change) => `${x.change} ${x.node}/${x.component} ${x.path}`;
    let r = await c.cli(['--json', 'diff', a, b, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sorted(DemoCluster.result<Change[]>(r.stdout).map(key)), sorted(expected.map(key)), 'node2 did not change, so it is not listed');

    r = await c.cli(['diff', a, b, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 4, r.stdout);
    assert.ok(lines.includes(`added    node1/haproxy ${abs('etc/haproxy/errors/504.http')}`), r.stdout);
    assert.ok(lines.includes(`removed  node1/haproxy ${abs('etc/haproxy/errors/503.http')}`), r.stdout);
    assert.ok(lines.includes(`changed  node1/haproxy ${abs('etc/haproxy/haproxy.cfg')}`), r.stdout);

    // The other way round, added and removed swap.
    r = await c.cli(['--json', 'diff', b, a, '-t', c.target]);
    const back = DemoCluster.result<Change[]>(r.stdout);
    assert.deepEqual(back.filter((x) => x.change === 'added').map((x) => x.path), [abs('etc/haproxy/errors/503.http')]);
    assert.deepEqual(back.filter((x) => x.change === 'removed').map((x) => x.path), [abs('etc/haproxy/errors/504.http')]);

    r = await c.cli(['diff', b, b, '-t', c.target]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), `no differences between ${b} and ${b}`);
  });

  test('diff with an incomplete or unknown set is refused in one line, exit 2', async () => {
    const inc = dayAt(50);
    await fabricateIncomplete(c.target, inc);
    try {
      for (const [args, msg] of [
        [['diff', a, inc], new RegExp(`backup ${inc} is incomplete and has nothing to compare`)],
        [['diff', a, '20991231T235959Z'], /backup '20991231T235959Z' not found/],
        [['diff', a], /missing required argument 'id2'/],
      ] as [string[], RegExp][]) {
        const r = await c.cli([...args, '-t', c.target]);
        assert.equal(r.code, 2, args.join(' '));
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, msg);
      }
    } finally {
      await fsp.rm(path.join(c.target, inc), { recursive: true });
    }
  });

  // Sets by age: complete ones over 40 days (two on one day), a partial and a failed one older
  // than the newest complete set, and two incomplete ones either side of the 24 h grace period.
  const old = {
    c1: dayAt(1),
    c2am: dayAt(2, 6),
    c2pm: dayAt(2, 18),
    c3: dayAt(3),
    c10: dayAt(10),
    c40: dayAt(40),
    p5: dayAt(5),
    f6: dayAt(6),
    incOld: idAt(new Date(Date.now() - 30 * HOUR)),
    incYoung: idAt(new Date(Date.now() - 2 * HOUR)),
  };

  test('fabricated older sets are listed with their ids and statuses', async () => {
    for (const id of [old.c1, old.c2am, old.c2pm, old.c3, old.c10, old.c40]) await fabricateSet(c.target, b, id);
    await fabricateSet(c.target, b, old.p5, { status: 'partial' });
    await fabricateSet(c.target, b, old.f6, { status: 'failed' });
    await fabricateIncomplete(c.target, old.incOld);
    await fabricateIncomplete(c.target, old.incYoung);
    const r = await c.cli(['--json', 'list', '-t', c.target]);
    const list = Object.fromEntries(DemoCluster.result<{ backupId: string; status: string }[]>(r.stdout).map((s) => [s.backupId, s.status]));
    assert.deepEqual(list, {
      [a]: 'complete', [b]: 'complete', [old.c1]: 'complete', [old.c2am]: 'complete', [old.c2pm]: 'complete', [old.c3]: 'complete', [old.c10]: 'complete', [old.c40]: 'complete',
      [old.p5]: 'partial', [old.f6]: 'failed', [old.incOld]: 'incomplete', [old.incYoung]: 'incomplete',
    });
    // The copies are whole sets: verify checks every artifact against the copied manifest.
    const v = await c.cli(['verify', old.c40, '-t', c.target]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
  });

  test('--dry-run --keep-last 2 lists what would go, with a reason each, and removes nothing', async () => {
    const before = await setIds(c.target);
    const p = await prune(['--keep-last', '2', '--dry-run']);
    assert.deepEqual(sorted(p.kept), sorted([a, b, old.incYoung]));
    assert.deepEqual(sorted(p.removed), sorted([old.c1, old.c2am, old.c2pm, old.c3, old.c10, old.c40, old.p5, old.f6, old.incOld]));
    const reason = (id: string) => p.reasons.find((x) => x.startsWith(`${id}: `));
    assert.equal(reason(b), `${b}: kept (last)`);
    assert.equal(reason(old.c40), `${old.c40}: not kept by any --keep rule`);
    assert.equal(reason(old.p5), `${old.p5}: partial and older than the newest complete set`);
    assert.equal(reason(old.f6), `${old.f6}: failed and older than the newest complete set`);
    assert.equal(reason(old.incOld), `${old.incOld}: incomplete and older than the grace period`);
    assert.equal(reason(old.incYoung), `${old.incYoung}: kept (incomplete, within the grace period)`);
    assert.deepEqual(await setIds(c.target), before, 'a dry run removes nothing');
    const human = await c.cli(['prune', '-t', c.target, '--keep-last', '2', '--dry-run']);
    assert.match(human.stdout, /would remove 9, kept 3\n$/);
  });

  test('--keep-daily keeps the newest complete set of each day; rules add up', async () => {
    let p = await prune(['--keep-daily', '3', '--dry-run']);
    // Today: b (not a, older the same day); yesterday: c1; two days ago: the evening set.
    assert.deepEqual(sorted(p.kept.filter((id) => id !== old.incYoung)), sorted([b, old.c1, old.c2pm]));
    assert.ok(p.removed.includes(a) && p.removed.includes(old.c2am), p.reasons.join('\n'));
    assert.ok(p.reasons.includes(`${old.c1}: kept (daily)`), p.reasons.join('\n'));

    p = await prune(['--keep-daily', '3', '--keep-last', '2', '--dry-run']);
    assert.deepEqual(sorted(p.kept.filter((id) => id !== old.incYoung)), sorted([a, b, old.c1, old.c2pm]));

    // N counts days that have a complete set (as restic does), not calendar days: the 4th such
    // day is three days ago, the 5th and 6th are 10 and 40 days ago.
    p = await prune(['--keep-daily', '4', '--dry-run']);
    assert.deepEqual(sorted(p.kept.filter((id) => id !== old.incYoung)), sorted([b, old.c1, old.c2pm, old.c3]));
    p = await prune(['--keep-daily', '6', '--dry-run']);
    assert.deepEqual(sorted(p.kept.filter((id) => id !== old.incYoung)), sorted([b, old.c1, old.c2pm, old.c3, old.c10, old.c40]));
  });

  test('a real prune removes exactly what its dry run listed', async () => {
    const dry = await prune(['--keep-daily', '3', '--dry-run']);
    const wet = await prune(['--keep-daily', '3']);
    assert.deepEqual(sorted(wet.removed), sorted(dry.removed));
    assert.deepEqual(await setIds(c.target), sorted(dry.kept));
    const human = await c.cli(['prune', '-t', c.target, '--keep-daily', '3']);
    assert.match(human.stdout, /removed 0, kept 4\n$/, 'a second prune has nothing left to do');
  });

  test('the newest complete set stays, and so do partial sets newer than it; the grace period is a setting', async () => {
    // A partial set newer than every complete one: node2 is down.
    const n2 = c.nodes[1]!;
    await c.killAgent(n2);
    let partial: Summary & { code: number };
    try {
      partial = await backup();
    } finally {
      await c.startAgent(n2);
    }
    assert.equal(partial.code, 1);
    assert.equal(partial.status, 'partial');
    for (const rule of [['--keep-last', '1'], ['--keep-daily', '1'], ['--keep-weekly', '1'], ['--keep-monthly', '1']]) {
      const p = await prune([...rule, '--dry-run']);
      assert.ok(p.kept.includes(b), `${rule.join(' ')} keeps the newest complete set ${b}: ${p.reasons.join('; ')}`);
      assert.ok(p.kept.includes(partial.backupId), `${rule.join(' ')} keeps the newer partial set`);
      assert.ok(p.reasons.includes(`${partial.backupId}: kept (partial)`), p.reasons.join('\n'));
    }
    // With a 1-hour grace period the 2-hour-old incomplete set goes.
    let p = await prune(['--keep-last', '1', '--incomplete-grace-hours', '1', '--dry-run']);
    assert.ok(p.removed.includes(old.incYoung), p.reasons.join('\n'));
    p = await prune(['--keep-last', '1', '--incomplete-grace-hours', '48', '--dry-run']);
    assert.ok(p.kept.includes(old.incYoung), p.reasons.join('\n'));

    p = await prune(['--keep-last', '1']);
    assert.deepEqual(await setIds(c.target), sorted([b, partial.backupId, old.incYoung]));
    const v = await c.cli(['verify', b, '-t', c.target]);
    assert.equal(v.code, 0, 'the kept set is whole');
  });

  test('delete removes named sets, an incomplete one included, and refuses unknown ids', async () => {
    let r = await c.cli(['delete', old.incYoung, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[0], `removed ${old.incYoung}`, 'then the store line, when the target has a store');
    assert.ok(!(await setIds(c.target)).includes(old.incYoung));
    r = await c.cli(['delete', '20991231T235959Z', '-t', c.target]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /backup '20991231T235959Z' not found/);
  });

  test('bad prune input is refused in one line with exit 2, nothing removed', async () => {
    const before = await setIds(c.target);
    for (const [args, msg] of [
      [[], /prune needs at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly/],
      [['--keep-last', '-1'], /--keep-last '-1' is not a whole number/],
      [['--keep-daily', 'seven'], /--keep-daily 'seven' is not a whole number/],
      [['--keep-weekly', '1.5'], /--keep-weekly '1.5' is not a whole number/],
      [['--keep-last', '0'], /prune needs at least one of/],
    ] as [string[], RegExp][]) {
      const r = await c.cli(['prune', '-t', c.target, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, msg);
    }
    const r = await c.cli(['prune', '-t', path.join(c.root, 'no-such-target'), '--keep-last', '1', '--dry-run']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /target '.*no-such-target' does not exist/);
    assert.deepEqual(await setIds(c.target), before);
  });

  test('a prune of a target that does not exist says so (not ENOENT on the lock file)', async () => {
    const r = await c.cli(['prune', '-t', path.join(c.root, 'no-such-target'), '--keep-last', '1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /target '.*no-such-target' does not exist/);
  });

  test('a set directory copied without its manifest id rewritten is listed under its own name', async () => {
    const copy = dayAt(100);
    await fsp.cp(path.join(c.target, b), path.join(c.target, copy), { recursive: true });
    try {
      const r = await c.cli(['--json', 'list', '-t', c.target]);
      const ids = DemoCluster.result<{ backupId: string }[]>(r.stdout).map((s) => s.backupId);
      assert.ok(ids.includes(copy), `listed: ${ids.join(', ')}`);
    } finally {
      await fsp.rm(path.join(c.target, copy), { recursive: true, force: true });
    }
  });
});

describe('prune and delete delete the Elasticsearch snapshots of the sets they remove', () => {
  let c: DemoCluster;
  let es: FakeEs;
  let location = '';
  /** Four sets, oldest first; each has its own snapshot, taken by node1 and followed by node2. */
  const ids: string[] = [];
  const snap = (i: number) => snapshotNameOf(ids[i]!);

  async function snapshots(): Promise<string[]> {
    const r = await es.api('GET', '/_snapshot/lsbackup-logging/_all');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return sorted((r.body.snapshots as { snapshot: string }[]).map((x) => x.snapshot));
  }
  async function cli(args: string[]) {
    const r = await c.cli(['--json', ...args, '-t', c.target]);
    return { ...r, result: DemoCluster.result<PruneResult>(r.stdout) };
  }
  const reasonOf = (p: PruneResult, id: string) => p.reasons.find((x) => x.startsWith(`${id}: `));
  const stderrLines = (stderr: string) => stderr.trim().split('\n').filter(Boolean);

  before(async () => {
    const dir = tempDir('prune-es');
    const target = path.join(dir, 'backups');
    // The coordinator keys the repository by the inventory group: [logging] is one cluster.
    location = path.join(target, '_elasticsearch', 'logging');
    const yml = path.join(dir, 'elasticsearch.yml');
    await fsp.writeFile(yml, `path.repo: ["${target}"]\n`);
    const passwordFile = path.join(dir, 'password');
    await fsp.writeFile(passwordFile, 'pw\n', { mode: 0o600 });
    const pki = makePki(path.join(dir, 'pki'));
    es = await FakeEs.start({ configFile: yml, pki, users: { admin: 'pw' } });
    assert.equal((await es.api('PUT', '/logs-1')).status, 200);
    assert.equal((await es.api('PUT', '/logs-1/_doc/1', { message: 'kept' })).status, 201);
    const elasticsearch = { url: es.url, ca_file: pki.caFile, username: 'admin', password_file: passwordFile, config_file: yml };
    c = await startCluster({ nodes: 2, target, groups: [['haproxy', 'logging'], ['logging']], nodeOverrides: [{ components: { elasticsearch } }, { components: { elasticsearch } }] });
    for (let i = 0; i < 4; i++) {
      const r = await c.cli(['--json', 'backup', '-b', c.buildDir, '-t', c.target]);
      assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
      ids.push(DemoCluster.result<Summary>(r.stdout).backupId);
    }
  });

  after(async () => {
    await dropCluster(c);
    await es?.close();
  });

  test('every set has its own snapshot, recorded by both nodes', async () => {
    assert.deepEqual(await snapshots(), sorted([0, 1, 2, 3].map(snap)));
    const m = JSON.parse(await fsp.readFile(path.join(c.target, ids[0]!, 'manifest.json'), 'utf8')) as { parts: { node: string; component: string; meta: Record<string, string> }[] };
    const esParts = m.parts.filter((p) => p.component === 'elasticsearch');
    assert.deepEqual(esParts.map((p) => [p.node, p.meta.snapshot, p.meta.location]), [['node1', snap(0), location], ['node2', snap(0), location]]);
  });

  test('--dry-run names the snapshot each removed set would take with it, and deletes nothing', async () => {
    const mark = es.requests.length;
    const r = await cli(['prune', '--keep-last', '2', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sorted(r.result.removed), sorted([ids[0]!, ids[1]!]));
    for (const i of [0, 1]) assert.equal(reasonOf(r.result, ids[i]!), `${ids[i]}: not kept by any --keep rule; would delete Elasticsearch snapshot ${snap(i)} in repository lsbackup-logging (${location})`);
    assert.equal(reasonOf(r.result, ids[3]!), `${ids[3]}: kept (last)`);
    assert.deepEqual(es.requests.slice(mark), [], 'a dry run does not even ask the cluster');
    assert.deepEqual(await snapshots(), sorted([0, 1, 2, 3].map(snap)));
    assert.deepEqual(await setIds(c.target), sorted(ids));
  });

  test('Elasticsearch down: the set stays, and one line names the snapshot left and how to delete it', async () => {
    const r = await whileDown(() => es.pause(), () => es.resume(), () => cli(['prune', '--keep-last', '3']));
    assert.equal(r.code, 1, 'a prune that could not do everything fails the run');
    assert.deepEqual(r.result.held, [ids[0]]);
    assert.deepEqual(r.result.removed, []);
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `^lsbackup: ${ids[0]}: not kept by any --keep rule, but not removed: Elasticsearch snapshot ${snap(0)} in repository lsbackup-logging \\(${location}\\) could not be deleted ` +
          `\\(node1: nothing answers at https://localhost:\\d+ \\(connection refused; .*\\); node2: nothing answers at .*\\); ` +
          `the next prune or delete retries \\(by hand: DELETE /_snapshot/lsbackup-logging/${snap(0)}\\)$`,
      ),
    );
    assert.equal(reasonOf(r.result, ids[0]!), lines[0]!.replace(/^lsbackup: /, ''));
    assert.deepEqual(await setIds(c.target), sorted(ids), 'the set is kept: it is the record of the snapshot');
    assert.deepEqual(await snapshots(), sorted([0, 1, 2, 3].map(snap)));
  });

  test("prune deletes the removed set's snapshot through another node when one agent is down, and keeps the others", async () => {
    const n1 = c.nodes[0]!;
    const r = await whileDown(() => c.killAgent(n1), () => c.startAgent(n1), () => cli(['prune', '--keep-last', '3']));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.result.removed, [ids[0]]);
    assert.deepEqual(r.result.held, []);
    assert.equal(reasonOf(r.result, ids[0]!), `${ids[0]}: not kept by any --keep rule; node2: deleted snapshot ${snap(0)} from repository lsbackup-logging`);
    assert.deepEqual(await snapshots(), sorted([1, 2, 3].map(snap)));
    assert.deepEqual(await setIds(c.target), sorted(ids.slice(1)));
    assert.ok(es.requests.some((x) => x.method === 'DELETE' && x.path === `/_snapshot/lsbackup-logging/${snap(0)}`), 'through the snapshot API');
  });

  test('every agent unreachable: delete keeps the set and says which snapshot is left, exit 1', async () => {
    const r = await whileDown(
      () => Promise.all(c.nodes.map((n) => c.killAgent(n))),
      () => Promise.all(c.nodes.map((n) => c.startAgent(n))),
      () => c.cli(['delete', ids[1]!, '-t', c.target]),
    );
    assert.equal(r.code, 1);
    assert.equal(r.stdout.split('\n')[0], 'removed nothing', 'then the store line');
    const lines = stderrLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^lsbackup: ${ids[1]}: named for removal, but not removed: Elasticsearch snapshot ${snap(1)} in repository lsbackup-logging .* could not be deleted \\(node1: unreachable \\(connect ECONNREFUSED [\\d.:]+\\); node2: unreachable .*by hand: DELETE /_snapshot/lsbackup-logging/${snap(1)}\\)$`));
    assert.ok((await setIds(c.target)).includes(ids[1]!));
    assert.deepEqual(await snapshots(), sorted([1, 2, 3].map(snap)));
  });

  test("delete <id> deletes the set's snapshot; one already deleted by hand counts as deleted", async () => {
    let r = await c.cli(['delete', ids[1]!, '-t', c.target]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[0], `removed ${ids[1]}`, 'then the store line');
    assert.deepEqual(await snapshots(), sorted([2, 3].map(snap)));

    assert.equal((await es.api('DELETE', `/_snapshot/lsbackup-logging/${snap(2)}`)).status, 200);
    const d = await cli(['delete', ids[2]!]);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(d.result.removed, [ids[2]]);
    assert.equal(reasonOf(d.result, ids[2]!), `${ids[2]}: named for removal; node1: snapshot ${snap(2)} was already gone from repository lsbackup-logging`);
    assert.deepEqual(await setIds(c.target), [ids[3]]);
    assert.deepEqual(await snapshots(), [snap(3)]);
    r = await c.cli(['verify', ids[3]!, '-t', c.target]);
    assert.equal(r.code, 0, 'the set that stays is whole');
  });

  test("a copied set that names a kept set's snapshot goes without it", async () => {
    const copy = dayAt(30);
    await fabricateSet(c.target, ids[3]!, copy);
    const r = await cli(['delete', copy]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(reasonOf(r.result, copy), `${copy}: named for removal; Elasticsearch snapshot ${snap(3)} in repository lsbackup-logging (${location}) stays: set ${ids[3]} uses it too`);
    assert.deepEqual(await setIds(c.target), [ids[3]]);
    assert.deepEqual(await snapshots(), [snap(3)]);
  });
});

describe('a bad daemon config: exit 2 and one line naming the file, the key and what was expected', () => {
  let dir = '';
  before(async () => {
    dir = await fsp.mkdtemp(path.join((await import('node:os')).tmpdir(), 'lsbackup-config-'));
  });
  after(async () => {
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  // A fixed port is the only kind a coordinator can know; the good config gets a free one below.
  const good = { node: 'node1', listen: '127.0.0.1:50551', state_dir: '/var/lib/lsbackup', insecure: true, components: { haproxy: {} } };
  const cases: [string, string, Record<string, unknown> | string, RegExp][] = [
    ['agent', 'a misspelt key', { ...good, compresion_level: 5 }, /key '\(top level\)': unknown key 'compresion_level'$/],
    ['agent', 'a string for a number', { ...good, compression_level: 'high' }, /key 'compression_level': Invalid input: expected number, received string$/],
    ['agent', 'a number out of range', { ...good, compression_level: 12 }, /key 'compression_level': Too big: expected number to be <=9$/],
    ['agent', 'an unknown component', { ...good, components: { mysql: {} } }, /key 'components': unknown key 'mysql'$/],
    ['agent', 'a relative path in a component', { ...good, components: { haproxy: { paths: ['etc/haproxy'] } } }, /key 'components\.haproxy\.paths\.0': expected an absolute path$/],
    ['agent', 'a string for a list', { ...good, components: { kibana: { config_paths: '/etc/kibana' } } }, /key 'components\.kibana\.config_paths': Invalid input: expected array, received string$/],
    ['agent', 'a wrong log level', { ...good, log_level: 'verbose' }, /key 'log_level': Invalid option: expected one of "error"\|"warn"\|"info"\|"debug"$/],
    ['agent', 'a half tls section', { ...good, tls: { ca: '/etc/lsbackup/pki/ca.crt' } }, /key 'tls\.cert': Invalid input: expected string, received undefined$/],
    ['agent', 'broken YAML', 'node: [node1\nlisten: x\n', /not valid YAML: /],
    ['coordinator', 'a port out of range', { agent_port: 70000, insecure: true }, /key 'agent_port': Too big: expected number to be <=65535$/],
    ['agent', 'a listen port out of range', { ...good, listen: '127.0.0.2:70000' }, /key 'listen': expected a port from 1 to 65535$/],
    ['agent', 'listen port 0 (a random port nobody can know)', { ...good, listen: '127.0.0.2:0' }, /key 'listen': expected a port from 1 to 65535$/],
    ['coordinator', 'a listen port out of range', { listen: '127.0.0.1:70000', insecure: true }, /key 'listen': expected a port from 1 to 65535$/],
    ['coordinator', 'metrics_listen port 0', { metrics_listen: '127.0.0.1:0', insecure: true }, /key 'metrics_listen': expected a port from 1 to 65535$/],
    ['agent', 'an unknown key with terminal escapes', { ...good, ['x\u001b[2J\u001b]0;owned\u0007']: 1 }, /unknown key 'x\\x1b\[2J\\x1b\]0;owned\\x07'$/],
    ['coordinator', 'a misspelt key', { metrics_listn: '127.0.0.1:9100', insecure: true }, /key '\(top level\)': unknown key 'metrics_listn'$/],
    ['coordinator', 'a backup key file that is missing', { backup_key_file: '/nonexistent/backup-key.json', insecure: true }, /key 'backup_key_file': backup key file \/nonexistent\/backup-key\.json cannot be read: ENOENT/],
    ['coordinator', 'an encrypted set_format 2', { backup_key_file: '/etc/lsbackup/backup-key.json', set_format: 2, insecure: true }, /key 'set_format': format 2 cannot be encrypted/],
  ];
  for (const [daemon, what, body, msg] of cases) {
    test(`${daemon}: ${what}`, async () => {
      const file = path.join(dir, `${daemon}-${what.replace(/\W+/g, '-')}.yaml`);
      await fsp.writeFile(file, typeof body === 'string' ? body : YAML.stringify(body));
      const r = await run(process.execPath, [daemon === 'agent' ? bin.agent : bin.coordinator, '--config', file], { timeoutMs: 15_000 });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.ok(lines[0]!.startsWith(`lsbackup-${daemon}: config file ${file}: `), lines[0]);
      assert.match(lines[0]!, msg);
      assert.equal(r.stdout, '', 'nothing started, nothing logged');
    });
  }

  test('a listen port in use: exit 1 and one line naming the address, the key and the file', async () => {
    const net = await import('node:net');
    const holder = net.createServer();
    const port = await new Promise<number>((resolve) => holder.listen(0, '127.0.0.1', () => resolve((holder.address() as import('node:net').AddressInfo).port)));
    try {
      const file = path.join(dir, 'agent-port-in-use.yaml');
      await fsp.writeFile(file, YAML.stringify({ ...good, listen: `127.0.0.1:${port}`, state_dir: path.join(dir, 'state') }));
      const r = await run(process.execPath, [bin.agent, '--config', file], { timeoutMs: 15_000 });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^lsbackup-agent: cannot listen on 127\\.0\\.0\\.1:${port} \\(key 'listen' in ${file.replace(/[.]/g, '\\.')}\\): listen EADDRINUSE`));
    } finally {
      holder.close();
    }
  });

  test('a missing config file', async () => {
    const r = await run(process.execPath, [bin.agent, '--config', path.join(dir, 'absent.yaml')]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim(), `lsbackup-agent: config file ${path.join(dir, 'absent.yaml')}: not found`);
  });

  test('the good config, for contrast, starts', async () => {
    const file = path.join(dir, 'good.yaml');
    await fsp.writeFile(file, YAML.stringify({ ...good, listen: `127.0.0.1:${await freePort()}`, state_dir: path.join(dir, 'state') }));
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [bin.agent, '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('listening on')) resolve(out);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}`)));
      });
      const first = JSON.parse(line.trim().split('\n').find((l) => l.includes('listening on'))!) as { level: string; message: string; service: string; node: string };
      assert.equal(first.service, 'lsbackup-agent', 'logs are JSON lines for journald');
      assert.equal(first.node, 'node1');
      assert.match(first.message, /components: haproxy/);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
