/**
 * `npm run demo`: a whole backup and restore on a local three-node cluster, printed as an
 * operator would want to read it. Exits 0 only when the restored files match the originals.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { DemoCluster } from './cluster.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const step = (n: number, line: string) => say(`\n== ${n}. ${line}`);

async function fingerprint(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (p: string) => {
    const st = await fsp.lstat(p);
    const rel = path.relative(root, p);
    if (st.isSymbolicLink()) out.set(rel, `-> ${await fsp.readlink(p)}`);
    else if (st.isDirectory()) for (const n of await fsp.readdir(p)) await walk(path.join(p, n));
    else out.set(rel, `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs)} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex').slice(0, 16)}`);
  };
  await walk(root);
  return out;
}

async function main(): Promise<number> {
  say('lsbackup demo: a coordinator and three agents on this machine, talking mTLS.');
  const cluster = await DemoCluster.create({
    groups: [['haproxy', 'kibana'], ['load_balancer', 'grafana'], ['haproxy', 'opensearch_dashboards']],
    extraInventory: '[kafka]\nnode4 ansible_host=127.0.0.5\n',
    encrypted: true,
  });
  try {
    step(1, 'Start the cluster');
    say(`build directory: ${cluster.buildDir} (inventory below)`);
    say(cluster.inventoryText().trim().split('\n').map((l) => `  ${l}`).join('\n'));
    say(`keys (lsbackup keys init): the identity ${cluster.identityFile} stays with the operator; the coordinator has only backup-key.json (recipients and id key); the agents get the recipients for each backup and keep nothing`);
    await cluster.start();
    say(`coordinator 127.0.0.1:${cluster.coordinatorPort}; agents ${cluster.nodes.map((n) => `${n.name}@${n.ip}:${n.port}`).join(', ')}`);

    step(2, 'Ask the agents what they serve: lsbackup agents -b <build_dir>');
    let r = await cluster.cli(['agents', '-b', cluster.buildDir, '-t', cluster.target]);
    say(r.stdout.trimEnd());

    step(3, 'Back up: lambdastack backup -b <build_dir> -t <target_path>');
    r = await cluster.cli(['backup', '-b', cluster.buildDir, '-t', cluster.target]);
    say(r.stdout.trimEnd());
    if (r.code !== 0) throw new Error(`backup exited ${r.code}: ${r.stderr.trim()}`);
    const id = r.stdout.trim().split('\n').at(-1)!;

    step(4, 'List and verify the set');
    r = await cluster.cli(['list', '-t', cluster.target]);
    say(r.stdout.trimEnd());
    r = await cluster.cli(['verify', id, '-t', cluster.target]);
    say(r.stdout.trimEnd());
    if (r.code !== 0) throw new Error(`verify exited ${r.code}`);
    r = await cluster.cli(['show', id, '-t', cluster.target]);
    const encryptedLine = r.stdout.split('\n').find((l) => l.startsWith('encrypted to '));
    if (!encryptedLine) throw new Error(`show does not say the set is encrypted:\n${r.stdout}`);
    say(encryptedLine);

    const victim = cluster.nodes[0]!;
    const etc = path.join(victim.root, 'etc');
    const before = await fingerprint(etc);
    step(5, `Break ${victim.name}: overwrite haproxy.cfg, delete the TLS key, chmod kibana.yml`);
    await fsp.writeFile(path.join(etc, 'haproxy/haproxy.cfg'), 'this is not a haproxy config\n');
    await fsp.rm(path.join(etc, 'ssl/haproxy/cluster.pem'));
    await fsp.chmod(path.join(etc, 'kibana/kibana.yml'), 0o777);
    const broken = await fingerprint(etc);
    say(`${[...before.keys()].filter((k) => before.get(k) !== broken.get(k)).length} file(s) differ from the backup now`);

    step(6, `Restore ${victim.name}: lsbackup restore ${id} -t <target> --node ${victim.name} --identity <identity.txt>`);
    r = await cluster.cli(['restore', id, '-t', cluster.target, '--node', victim.name], { LSBACKUP_IDENTITY_FILE: '' });
    say(`without the identity: ${r.stderr.trim()}`);
    if (r.code === 0) throw new Error('an encrypted set was restored without the identity');
    r = await cluster.cli(['restore', id, '-t', cluster.target, '--node', victim.name, '--identity', cluster.identityFile]);
    say(r.stdout.trimEnd());
    if (r.code !== 0) throw new Error(`restore exited ${r.code}: ${r.stderr.trim()}`);

    step(7, 'Compare every file with the original (content, mode, owner, mtime, symlinks)');
    const after = await fingerprint(etc);
    const differ = [...before.keys()].filter((k) => before.get(k) !== after.get(k));
    if (differ.length) throw new Error(`still different after restore: ${differ.join(', ')}`);
    say(`all ${before.size} files of ${victim.name} are back exactly as they were.`);
    return 0;
  } catch (err) {
    say(`\nDEMO FAILED: ${(err as Error).message}`);
    return 1;
  } finally {
    step(8, 'Stop everything');
    await cluster.stop();
    await cluster.remove();
    say('stopped the coordinator and the agents, removed the sandbox.');
  }
}

process.exitCode = await main();
