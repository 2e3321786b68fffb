/**
 * Many simulated agents in one process (test/helpers/sim-agents.ts starts a few with fork):
 * each node is the real agent server (agent/server.ts) on its own loopback address, with a
 * runtime whose only component is a real `filesComponent('haproxy', ...)` over that node's small
 * directory, so every node writes a real part (tar, entries, part.json) into the shared target.
 * The parent sends `{ op: 'stop' | 'start', node }` to take one node away and bring it back.
 */
import childProcess, { type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { promises as fsp } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { PassThrough } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import { filesComponent } from '../../agent/components/files.js';
import type { AgentRuntime } from '../../agent/runner.js';
import { startAgentServer } from '../../agent/server.js';
import { VERSION } from '../../common/commit.js';
import { createLogger } from '../../common/log.js';
import { serverCredentials, type TlsConfig } from '../../common/tls.js';

/** What the parent writes for this process: one line per node, with the certificate it presents (sim-agents.ts). */
export interface SimConfig {
  nodes: { name: string; listen: string; tls: TlsConfig; paths: string[]; stateDir: string }[];
}

export type SimRequest = { op: 'stop' | 'start'; node: string; id: number };
export type SimReply = { ready: true } | { id: number; error?: string } | { failed: string };

/**
 * Every simulated node is a node without getfattr (Debian package attr), which the agent supports
 * (FORMAT.md: nothing is recorded, the part says so once). Why: the agent runs one getfattr per
 * archived root, and a spawn blocks the spawning process (~44 ms each measured on this 2-core
 * machine, more as the process grows); a real agent pays that alone on its node, but a thousand
 * nodes in one process would block it for a minute and miss their keepalive pings. A getfattr
 * spawned here fails as a missing command does (ENOENT), without forking.
 */
function withoutGetfattr(): void {
  const real = childProcess.spawn;
  const missing = (cmd: string): ChildProcess => {
    const child = Object.assign(new EventEmitter(), { stdin: new PassThrough(), stdout: new PassThrough(), stderr: new PassThrough(), kill: () => true });
    process.nextTick(() => {
      child.emit('error', Object.assign(new Error(`spawn ${cmd} ENOENT`), { code: 'ENOENT', syscall: `spawn ${cmd}`, path: cmd }));
      child.stdout.end();
      child.stderr.end();
    });
    return child as unknown as ChildProcess;
  };
  childProcess.spawn = ((cmd: string, ...rest: unknown[]) => (cmd === 'getfattr' ? missing(cmd) : (real as (...a: unknown[]) => ChildProcess)(cmd, ...rest))) as typeof childProcess.spawn;
  // common/exec.ts imported spawn as an ES binding: this makes it see the replacement.
  syncBuiltinESMExports();
}
withoutGetfattr();

const config = JSON.parse(await fsp.readFile(process.argv[2]!, 'utf8')) as SimConfig;
// One credentials object per certificate, shared by the nodes it names.
const credsOf = new Map<string, grpc.ServerCredentials>();
const credentialsFor = (tls: TlsConfig) => credsOf.get(tls.cert) ?? credsOf.set(tls.cert, serverCredentials(tls, false)).get(tls.cert)!;
const log = createLogger('sim-agent', process.env.LSBACKUP_LOG_LEVEL ?? 'warn');
const servers = new Map<string, grpc.Server>();
const byName = new Map(config.nodes.map((n) => [n.name, n]));

function runtimeOf(n: SimConfig['nodes'][number]): AgentRuntime {
  return { node: n.name, version: VERSION, stateDir: n.stateDir, compressionLevel: 6, components: new Map([['haproxy', filesComponent('haproxy', n.paths)]]), log: log.child({ node: n.name }) };
}

async function start(name: string): Promise<void> {
  const n = byName.get(name);
  if (!n) throw new Error(`no simulated node ${name}`);
  await fsp.mkdir(n.stateDir, { recursive: true, mode: 0o700 });
  const { server } = await startAgentServer(runtimeOf(n), n.listen, credentialsFor(n.tls), false);
  servers.set(name, server);
}

function stop(name: string): void {
  const s = servers.get(name);
  if (!s) throw new Error(`simulated node ${name} is not running`);
  // As a killed agent: open streams break, new connections are refused.
  s.forceShutdown();
  servers.delete(name);
}

process.on('message', (m: SimRequest) => {
  const done = (error?: string) => process.send!({ id: m.id, ...(error ? { error } : {}) } satisfies SimReply);
  (m.op === 'stop' ? Promise.resolve().then(() => stop(m.node)) : start(m.node)).then(() => done(), (err: Error) => done(err.message));
});
// The parent gone (a test that crashed): nothing is left listening.
process.on('disconnect', () => process.exit(0));

try {
  // Bound in batches: a thousand TLS servers at once would only queue on the same two cores.
  for (let i = 0; i < config.nodes.length; i += 100) await Promise.all(config.nodes.slice(i, i + 100).map((n) => start(n.name)));
  process.send!({ ready: true } satisfies SimReply);
} catch (err) {
  process.send!({ failed: (err as Error).message } satisfies SimReply);
  process.exit(1);
}
