/**
 * Operations: scripts/install.sh into a temp prefix, the systemd units it installs (checked by
 * systemd-analyze verify and security), the config skeleton (accepted by the real schemas, and
 * enough, with certificates, to run the installed daemons), and the backup service's two
 * commands expanded from backup.env as systemd would, run against a live demo cluster.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { agentConfigSchema, loadAgentConfig } from '../agent/config.js';
import { cliConfigSchema } from '../cli/client.js';
import { loadConfig } from '../common/config.js';
import { coordinatorConfigSchema, loadCoordinatorConfig } from '../coordinator/config.js';
import { DemoCluster, freePort, spawnDaemon } from '../demo/cluster.js';
import { expandExecStart, fabricateIncomplete, have, idAt, parseEnvironmentFile, repoRoot, run, setIds, stopProcess, unitEntries, waitFor } from './helpers/ops.js';
import { dropCluster, startCluster } from './helpers/harness.js';

const UNITS = ['lsbackup-agent.service', 'lsbackup-coordinator.service', 'lsbackup-backup.service', 'lsbackup-backup.timer'];
const COMMANDS = ['lsbackup', 'lambdastack', 'lsbackup-agent', 'lsbackup-coordinator'];
const installScript = path.join(repoRoot, 'scripts/install.sh');
const pkg = JSON.parse(await fsp.readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** A relocated install: every path under one temp root, and written into the files as such. */
class Install {
  readonly prefix: string;
  readonly bin: string;
  readonly etc: string;
  readonly units: string;
  readonly state: string;
  readonly target: string;
  constructor(readonly root: string) {
    this.prefix = path.join(root, 'opt/lsbackup');
    this.bin = path.join(root, 'bin');
    this.etc = path.join(root, 'etc/lsbackup');
    this.units = path.join(root, 'units');
    this.state = path.join(root, 'state');
    this.target = path.join(root, 'target');
  }
  args(): string[] {
    return ['--reuse-node-modules', '--prefix', this.prefix, '--bindir', this.bin, '--sysconfdir', this.etc, '--unitdir', this.units, '--statedir', this.state, '--target', this.target, '--node-name', 'node1'];
  }
}

const mode = async (p: string) => ((await fsp.stat(p)).mode & 0o7777).toString(8);

/** Starts an installed daemon and waits for its "listening on" line. */
function startDaemon(file: string, config: string): Promise<ChildProcess> {
  return spawnDaemon([file, '--config', config], file);
}

describe('install.sh and the systemd units', () => {
  let root = '';
  let inst: Install;
  let installOutput = '';
  const daemons: ChildProcess[] = [];
  let cluster: DemoCluster | undefined;

  before(async () => {
    assert.ok(have('systemd-analyze'), 'systemd-analyze is missing: apt-get install systemd');
    root = await fsp.mkdtemp(path.join(os.tmpdir(), 'lsbackup-install-'));
    inst = new Install(root);
    const r = await run('sh', [installScript, ...inst.args()], { timeoutMs: 300_000 });
    installOutput = r.stdout;
    assert.equal(r.code, 0, `install.sh failed:\n${r.stdout}\n${r.stderr}`);
  });

  after(async () => {
    for (const d of daemons) await stopProcess(d);
    await dropCluster(cluster);
    if (root) await fsp.rm(root, { recursive: true, force: true });
  });

  test('installs the program with its production dependencies only, and working commands', async () => {
    for (const f of ['package.json', 'package-lock.json', 'dist/cli/main.js', 'dist/agent/main.js', 'dist/coordinator/main.js', 'proto/lsbackup.proto', 'docs/OPERATIONS.md', 'monitoring/lsbackup-alerts.yml', 'systemd/lsbackup-agent.service']) {
      assert.ok((await fsp.stat(path.join(inst.prefix, f))).isFile(), `${f} installed`);
    }
    // package-lock.json marks what only development needs (typescript, most @types); the rest is
    // the production tree (@types/node stays: protobufjs depends on it).
    const lock = JSON.parse(await fsp.readFile(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const entries = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/'));
    const dev = entries.filter(([, v]) => v.dev).map(([p]) => p);
    assert.ok(dev.includes('node_modules/typescript'));
    for (const p of dev) assert.equal(await fsp.stat(path.join(inst.prefix, p)).catch(() => 'absent'), 'absent', `dev-only ${p} left out`);
    for (const [p] of entries.filter(([, v]) => !v.dev)) assert.ok((await fsp.stat(path.join(inst.prefix, p, 'package.json')).catch(() => undefined))?.isFile(), `${p} installed`);
    for (const dep of Object.keys(pkg.dependencies)) assert.ok(await fsp.stat(path.join(inst.prefix, 'node_modules', dep, 'package.json')), `dependency ${dep} installed`);
    assert.equal(await fsp.stat(path.join(inst.prefix, 'dist/test')).catch(() => 'absent'), 'absent', 'tests are not installed');
    for (const c of COMMANDS) assert.equal(await mode(path.join(inst.bin, c)), '755', c);

    let r = await run(path.join(inst.bin, 'lsbackup'), ['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
    r = await run(path.join(inst.bin, 'lambdastack'), ['--help']);
    assert.match(r.stdout, /^Usage: lambdastack /, 'the lambdastack command calls itself lambdastack');
    r = await run(path.join(inst.bin, 'lsbackup-agent'), ['--version']);
    assert.equal(r.stdout.trim(), pkg.version);
    assert.match(installOutput, /lsbackup certs init --dir .*\/etc\/lsbackup\/pki/, 'next steps name the certificate commands');
    assert.match(installOutput, /lsbackup certs issue <node> --role agent --host <node IP>/);
    assert.match(installOutput, /systemctl enable --now lsbackup-backup.timer|lsbackup-coordinator lsbackup-backup.timer/);
  });

  test('configs are owner-only, the pki and state directories private', async () => {
    for (const f of ['agent.yaml', 'coordinator.yaml', 'cli.yaml', 'backup.env']) assert.equal(await mode(path.join(inst.etc, f)), '600', f);
    assert.equal(await mode(path.join(inst.etc, 'pki')), '700');
    assert.equal(await mode(inst.state), '700');
    assert.equal(await mode(inst.etc), '755', 'users can reach their own ~/.config CLI config without reading these');
  });

  test('the config skeleton passes the daemons\' and the CLI\'s own schemas', async () => {
    const agent = loadAgentConfig(path.join(inst.etc, 'agent.yaml'));
    assert.equal(agent.node, 'node1');
    assert.equal(agent.state_dir, inst.state);
    assert.deepEqual(agent.tls, { ca: path.join(inst.etc, 'pki/ca.crt'), cert: path.join(inst.etc, 'pki/node1.crt'), key: path.join(inst.etc, 'pki/node1.key') });
    const coord = loadCoordinatorConfig(path.join(inst.etc, 'coordinator.yaml'));
    assert.equal(coord.tls?.cert, path.join(inst.etc, 'pki/coordinator.crt'));
    const cli = loadConfig(path.join(inst.etc, 'cli.yaml'), cliConfigSchema);
    assert.equal(cli.tls?.key, path.join(inst.etc, 'pki/operator.key'));
    // The commented examples are valid too once uncommented.
    const text = await fsp.readFile(path.join(inst.etc, 'agent.yaml'), 'utf8');
    const examples = text.split('\n').filter((l) => /^#( components:|   )/.test(l)).map((l) => l.slice(2)).join('\n');
    const doc = YAML.parse(examples) as { components: Record<string, unknown> };
    assert.deepEqual(Object.keys(doc.components).sort(), ['alertmanager', 'elasticsearch', 'grafana', 'haproxy', 'kibana', 'postgresql', 'prometheus', 'rabbitmq']);
    const file = path.join(root, 'agent-examples.yaml');
    await fsp.writeFile(file, YAML.stringify({ ...YAML.parse(text.split('\n').filter((l) => !l.startsWith('components:')).join('\n')), ...doc }));
    assert.deepEqual(Object.keys(loadAgentConfig(file).components).sort(), Object.keys(doc.components).sort());
    const env = parseEnvironmentFile(await fsp.readFile(path.join(inst.etc, 'backup.env'), 'utf8'));
    assert.deepEqual(Object.keys(env).sort(), ['LSBACKUP_BACKUP_ARGS', 'LSBACKUP_BUILD_DIR', 'LSBACKUP_CONFIG', 'LSBACKUP_INCOMPLETE_GRACE_HOURS', 'LSBACKUP_KEEP_DAILY', 'LSBACKUP_KEEP_LAST', 'LSBACKUP_KEEP_MONTHLY', 'LSBACKUP_KEEP_WEEKLY', 'LSBACKUP_TARGET']);
    assert.equal(env.LSBACKUP_TARGET, inst.target);
    // Every key has its own comment right above it.
    const lines = (await fsp.readFile(path.join(inst.etc, 'backup.env'), 'utf8')).split('\n');
    for (const [i, l] of lines.entries()) if (/^[A-Z_]+=/.test(l)) assert.match(lines[i - 1] ?? '', /^#/, `${l} has a comment above it`);
  });

  test('units are installed with the install\'s paths, and a drop-in opens the target to the coordinator', async () => {
    for (const u of UNITS) {
      const text = await fsp.readFile(path.join(inst.units, u), 'utf8');
      assert.doesNotMatch(text.split(root).join('<ROOT>'), /(?<!<ROOT>)(\/usr\/local\/bin|\/etc\/lsbackup|\/opt\/lsbackup)/, `${u} names only the install's paths`);
      assert.equal(await mode(path.join(inst.units, u)), '644');
    }
    const agent = unitEntries(await fsp.readFile(path.join(inst.units, 'lsbackup-agent.service'), 'utf8'));
    assert.deepEqual(agent.filter(([k]) => k === 'ExecStart').map(([, v]) => v), [`${inst.bin}/lsbackup-agent --config ${inst.etc}/agent.yaml`]);
    const coord = unitEntries(await fsp.readFile(path.join(inst.units, 'lsbackup-coordinator.service'), 'utf8'));
    assert.deepEqual(coord.filter(([k]) => k === 'ExecStart').map(([, v]) => v), [`${inst.bin}/lsbackup-coordinator --config ${inst.etc}/coordinator.yaml`]);
    const dropIn = await fsp.readFile(path.join(inst.units, 'lsbackup-coordinator.service.d/target.conf'), 'utf8');
    assert.deepEqual(unitEntries(dropIn), [['ReadWritePaths', `-${inst.target}`]]);
    assert.deepEqual(unitEntries(dropIn, 'Unit'), [['RequiresMountsFor', inst.target]]);
    const timer = unitEntries(await fsp.readFile(path.join(inst.units, 'lsbackup-backup.timer'), 'utf8'), 'Timer');
    const t = Object.fromEntries(timer);
    assert.equal(t.Persistent, 'true');
    assert.match(t.RandomizedDelaySec ?? '', /^\d+min$/);
    const cal = await run('systemd-analyze', ['calendar', '--iterations=2', t.OnCalendar!]);
    assert.equal(cal.code, 0, cal.stderr);
    const next = [...cal.stdout.matchAll(/(?:Next elapse|Iter\. #2):.*?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) => Date.parse(`${m[1]!.replace(' ', 'T')}Z`));
    assert.equal(next.length, 2, cal.stdout);
    assert.equal(next[1]! - next[0]!, 86_400_000, 'the timer fires once a day');
  });

  test('systemd-analyze verify accepts every unit without a single warning, and would report one', async () => {
    for (const u of UNITS) {
      const r = await run('systemd-analyze', ['verify', path.join(inst.units, u)]);
      // verify exits 0 on unknown keys and bad values (it only says "ignoring"), so any output is a failure.
      assert.equal(r.code, 0, `${u}: ${r.stderr}`);
      assert.equal(r.stderr.trim(), '', `${u}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), '', `${u}: ${r.stdout}`);
    }
    // The check is not vacuous: the same unit with a typo, a bad value and a missing program is reported.
    const bad = path.join(root, 'bad');
    await fsp.mkdir(bad, { recursive: true });
    const text = await fsp.readFile(path.join(inst.units, 'lsbackup-coordinator.service'), 'utf8');
    await fsp.writeFile(path.join(bad, 'lsbackup-coordinator.service'), text.replace('ProtectSystem=strict', 'ProtectSystem=stricter\nProtectSytem=yes').replace(`${inst.bin}/lsbackup-coordinator`, `${inst.bin}/lsbackup-coordinatr`));
    const r = await run('systemd-analyze', ['verify', path.join(bad, 'lsbackup-coordinator.service')]);
    assert.match(r.stderr, /Failed to parse protect system value/);
    assert.match(r.stderr, /Unknown key 'ProtectSytem'/);
    assert.match(r.stderr, /lsbackup-coordinatr is not executable/);
  });

  test('the sandboxes: the coordinator and the backup job are locked down, the agent keeps what restores need', async () => {
    const exposure = async (u: string) => {
      const r = await run('systemd-analyze', ['security', '--offline=yes', path.join(inst.units, u)]);
      assert.equal(r.code, 0, r.stderr);
      return Number(/Overall exposure level for .*: (\d+\.\d)/.exec(r.stdout)?.[1]);
    };
    assert.ok((await exposure('lsbackup-coordinator.service')) <= 3, 'coordinator exposure');
    assert.ok((await exposure('lsbackup-backup.service')) <= 3, 'backup job exposure');
    assert.ok((await exposure('lsbackup-agent.service')) <= 6, 'agent exposure');
    const agent = Object.fromEntries(unitEntries(await fsp.readFile(path.join(inst.units, 'lsbackup-agent.service'), 'utf8')));
    assert.equal(agent.User, undefined, 'the agent runs as root: restores chown files back to their owners');
    assert.equal(agent.ProtectSystem, 'yes', 'the agent may write /etc and /var (restores), not /usr');
    assert.equal(agent.ProtectHome, undefined, 'configured paths under /root or /home stay restorable');
    assert.equal(agent.RestrictSUIDSGID, undefined, 'setgid directories such as /etc/elasticsearch (2750) must be restorable');
    assert.equal(agent.MemoryDenyWriteExecute, undefined, 'V8 needs W+X memory');
    for (const k of ['NoNewPrivileges', 'PrivateTmp', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups', 'LockPersonality', 'RestrictRealtime']) assert.equal(agent[k], 'yes', `agent ${k}`);
    assert.equal(agent.SystemCallArchitectures, 'native');
    assert.equal(agent.RestartPreventExitStatus, '2', 'a bad config is not restarted in a loop');
    const coord = Object.fromEntries(unitEntries(await fsp.readFile(path.join(inst.units, 'lsbackup-coordinator.service'), 'utf8')));
    assert.equal(coord.ProtectSystem, 'strict');
    for (const k of ['NoNewPrivileges', 'PrivateTmp', 'RestrictSUIDSGID', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectControlGroups', 'LockPersonality', 'RestrictRealtime']) assert.equal(coord[k], 'yes', `coordinator ${k}`);
  });

  test('with certificates from the installed CLI, the installed daemons run from the skeleton and talk mTLS', async () => {
    const cli = path.join(inst.bin, 'lsbackup');
    const pki = path.join(inst.etc, 'pki');
    for (const args of [['certs', 'init', '--dir', pki], ['certs', 'issue', 'coordinator', '--role', 'coordinator', '--host', '127.0.0.1', '--dir', pki], ['certs', 'issue', 'operator', '--role', 'operator', '--dir', pki], ['certs', 'issue', 'node1', '--role', 'agent', '--host', '127.0.0.2', '--dir', pki]]) {
      const r = await run(cli, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    for (const f of ['ca.key', 'node1.key', 'coordinator.key', 'operator.key']) assert.equal(await mode(path.join(pki, f)), '600', f);
    // Only the listen addresses change: free ports on loopback instead of 0.0.0.0:5055x.
    const agentPort = await freePort('127.0.0.2');
    const coordPort = await freePort();
    const edit = async (f: string, from: RegExp, to: string) => {
      const p = path.join(inst.etc, f);
      const text = await fsp.readFile(p, 'utf8');
      assert.match(text, from);
      await fsp.writeFile(p, text.replace(from, to));
    };
    await edit('agent.yaml', /^listen: .*$/m, `listen: 127.0.0.2:${agentPort}`);
    await edit('coordinator.yaml', /^listen: .*$/m, `listen: 127.0.0.1:${coordPort}`);
    await edit('cli.yaml', /^coordinator: .*$/m, `coordinator: 127.0.0.1:${coordPort}`);
    daemons.push(await startDaemon(path.join(inst.bin, 'lsbackup-agent'), path.join(inst.etc, 'agent.yaml')));
    daemons.push(await startDaemon(path.join(inst.bin, 'lsbackup-coordinator'), path.join(inst.etc, 'coordinator.yaml')));
    const build = path.join(root, 'build');
    await fsp.mkdir(build, { recursive: true });
    await fsp.writeFile(path.join(build, 'inventory'), `[haproxy]\nnode1 ansible_host=127.0.0.2 lsbackup_agent_port=${agentPort}\n`);
    const r = await run(cli, ['--json', 'agents', '-b', build], { env: { LSBACKUP_CONFIG: path.join(inst.etc, 'cli.yaml') } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const res = DemoCluster.result<{ agents: { node: string; reachable: boolean; info?: { version: string } }[] }>(r.stdout);
    assert.deepEqual(res.agents.map((a) => [a.node, a.reachable, a.info?.version]), [['node1', true, pkg.version]]);
    for (const d of daemons.splice(0)) await stopProcess(d);
  });

  test('the backup service\'s commands, expanded from backup.env as systemd does, back up and then prune', async () => {
    cluster = await startCluster({ nodes: 2, groups: [['haproxy', 'kibana'], ['haproxy']] });
    const c = cluster;
    // Left over from a run that never finished three days ago: the prune removes it.
    const stale = idAt(new Date(Date.now() - 72 * 3_600_000));
    await fsp.mkdir(c.target, { recursive: true, mode: 0o700 });
    await fabricateIncomplete(c.target, stale);
    const envFile = path.join(inst.etc, 'backup.env');
    const original = await fsp.readFile(envFile, 'utf8');
    const set = (text: string, key: string, value: string) => text.replace(new RegExp(`^${key}=.*$`, 'm'), `${key}=${value}`);
    let text = set(original, 'LSBACKUP_BUILD_DIR', c.buildDir);
    text = set(text, 'LSBACKUP_TARGET', c.target);
    text = set(text, 'LSBACKUP_CONFIG', c.cliConfig);
    text = set(text, 'LSBACKUP_BACKUP_ARGS', '--node node1 --component haproxy');
    text = set(text, 'LSBACKUP_KEEP_LAST', '1');
    for (const k of ['DAILY', 'WEEKLY', 'MONTHLY']) text = set(text, `LSBACKUP_KEEP_${k}`, '0');
    await fsp.writeFile(envFile, text);

    const unit = await fsp.readFile(path.join(inst.units, 'lsbackup-backup.service'), 'utf8');
    const runService = async () => {
      const { env, commands } = await expandExecStart(unit);
      assert.equal(commands.length, 2, 'backup, then prune');
      const results = [];
      // Type=oneshot: the ExecStart= lines run in order; the first that fails ends the run.
      for (const argv of commands) {
        const r = await run(argv[0]!, argv.slice(1), { env: { ...env, HOME: root } });
        results.push(r);
        if (r.code !== 0) break;
      }
      return { commands, results };
    };

    const first = await runService();
    assert.deepEqual(first.commands[0]!.slice(1), ['backup', '-b', c.buildDir, '-t', c.target, '--node', 'node1', '--component', 'haproxy'], 'LSBACKUP_BACKUP_ARGS is split into words');
    assert.deepEqual(first.commands[1]!.slice(1), ['prune', '-t', c.target, '--keep-last', '1', '--keep-daily', '0', '--keep-weekly', '0', '--keep-monthly', '0', '--incomplete-grace-hours', '24']);
    assert.equal(first.results[0]!.code, 0, first.results[0]!.stderr + first.results[0]!.stdout);
    const id1 = first.results[0]!.stdout.trim().split('\n').at(-1)!;
    assert.match(first.results[0]!.stdout, new RegExp(`backup ${id1} complete`));
    assert.match(first.results[0]!.stdout, /node1\s+haproxy\s+ok/);
    assert.doesNotMatch(first.results[0]!.stdout, /node2|kibana/, 'only what LSBACKUP_BACKUP_ARGS asked for');
    assert.equal(first.results[1]!.code, 0, first.results[1]!.stderr);
    assert.match(first.results[1]!.stdout, new RegExp(`${stale}: incomplete and older than the grace period`));
    assert.deepEqual(await setIds(c.target), [id1]);

    await waitFor('the next second, for a new set id', async () => idAt(new Date()) > id1);
    const second = await runService();
    assert.ok(second.results.every((r) => r.code === 0), second.results.map((r) => r.stderr).join('\n'));
    const id2 = second.results[0]!.stdout.trim().split('\n').at(-1)!;
    assert.match(second.results[1]!.stdout, new RegExp(`${id1}: not kept by any --keep rule`));
    assert.deepEqual(await setIds(c.target), [id2], 'LSBACKUP_KEEP_LAST=1 keeps only the newest');

    // A backup that is not complete fails the unit before the prune runs.
    const n2 = c.nodes[1]!;
    await fsp.writeFile(envFile, set(text, 'LSBACKUP_BACKUP_ARGS', ''));
    await c.killAgent(n2);
    const third = await runService();
    assert.equal(third.results.length, 1, 'prune skipped');
    assert.equal(third.results[0]!.code, 1);
    assert.match(third.results[0]!.stdout, /partial/);
    assert.equal((await setIds(c.target)).length, 2, 'nothing removed');
    await fsp.writeFile(envFile, original);
  });

  test('a second install keeps edited configs and says so; the program is replaced', async () => {
    const agentFile = path.join(inst.etc, 'agent.yaml');
    const edited = (await fsp.readFile(agentFile, 'utf8')) + '# edited by the operator\n';
    await fsp.writeFile(agentFile, edited);
    await fsp.chmod(agentFile, 0o644);
    await fsp.writeFile(path.join(inst.prefix, 'stale-file'), 'from the old version');
    const r = await run('sh', [installScript, ...inst.args()], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kept the existing configs: agent\.yaml coordinator\.yaml cli\.yaml backup\.env/);
    assert.equal(await fsp.readFile(agentFile, 'utf8'), edited);
    assert.equal(await mode(agentFile), '600', 'modes are put back to owner-only');
    assert.equal(await fsp.stat(path.join(inst.prefix, 'stale-file')).catch(() => 'gone'), 'gone', 'the program tree is replaced whole');
  });

  test('--destdir stages the install under a root, with the final paths inside the files', async () => {
    const stage = path.join(root, 'stage');
    const r = await run('sh', [installScript, '--reuse-node-modules', '--destdir', stage, '--node-name', 'node7'], { timeoutMs: 300_000 });
    assert.equal(r.code, 0, r.stderr);
    const unit = await fsp.readFile(path.join(stage, 'etc/systemd/system/lsbackup-agent.service'), 'utf8');
    assert.ok(unitEntries(unit).some(([k, v]) => k === 'ExecStart' && v === '/usr/local/bin/lsbackup-agent --config /etc/lsbackup/agent.yaml'));
    assert.match(await fsp.readFile(path.join(stage, 'usr/local/bin/lsbackup'), 'utf8'), /exec \S+ \/opt\/lsbackup\/dist\/cli\/main\.js "\$@"/);
    assert.match(await fsp.readFile(path.join(stage, 'etc/lsbackup/agent.yaml'), 'utf8'), /^node: node7$/m);
    assert.equal(await mode(path.join(stage, 'etc/lsbackup/coordinator.yaml')), '600');
    assert.ok((await fsp.stat(path.join(stage, 'opt/lsbackup/dist/cli/main.js'))).isFile());
    assert.ok((await fsp.stat(path.join(stage, 'var/lib/lsbackup'))).isDirectory());
  });

  test('docs/OPERATIONS.md describes every key of every config schema', async () => {
    const doc = await fsp.readFile(path.join(repoRoot, 'docs/OPERATIONS.md'), 'utf8');
    const keys = (schema: z.ZodType, prefix = ''): string[] => {
      const walk = (o: { properties?: Record<string, { properties?: unknown }> }, pre: string): string[] =>
        Object.entries(o.properties ?? {}).flatMap(([k, v]) => [`${pre}${k}`, ...(k === 'tls' ? [] : walk(v as never, `${pre}${k}.`))]);
      return walk(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as never, prefix);
    };
    const missing: string[] = [];
    for (const [name, schema] of [['agent.yaml', agentConfigSchema], ['coordinator.yaml', coordinatorConfigSchema], ['cli.yaml', cliConfigSchema]] as const) {
      for (const k of keys(schema)) {
        const leaf = k.split('.').at(-1)!;
        // Each key is written as `key` in the doc (components as **`name`** headings).
        if (!doc.includes(`\`${leaf}\``)) missing.push(`${name}: ${k}`);
      }
    }
    assert.deepEqual(missing, [], 'keys without a line in docs/OPERATIONS.md');
    for (const u of UNITS) assert.ok(doc.includes(u), `${u} is described`);
    for (const a of ['LsbackupNoCompleteBackup', 'LsbackupBackupPartial', 'LsbackupBackupFailed', 'LsbackupVerifyFailed']) assert.ok(doc.includes(a), `${a} is described`);
  });

  test('bad install options are refused with one line and exit 2', async () => {
    for (const [args, msg] of [
      [['--prefix', 'relative/dir'], /'relative\/dir' is not an absolute path/],
      [['--bogus'], /unknown option '--bogus'/],
      [['--target'], /--target needs a value/],
      [['--tarball', '/nonexistent.tgz'], /tarball '\/nonexistent.tgz' not found/],
      [['--node-name', 'a b'], /--node-name 'a b' may hold only/],
    ] as [string[], RegExp][]) {
      const r = await run('sh', [installScript, ...args, '--destdir', path.join(root, 'never')]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr.trim(), msg);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
    assert.equal(await fsp.stat(path.join(root, 'never')).catch(() => 'absent'), 'absent', 'nothing written');
  });
});
