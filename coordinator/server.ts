import type { Http2Session } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { CoordinatorHandlers } from '../common/proto.js';
import { proto, serverOptions } from '../common/proto.js';
import { messageOf, toServiceError } from '../common/errors.js';
import { authorize } from '../common/tls.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import type { AgentStatus } from '../proto/generated/lsbackup/v1/AgentStatus.js';
import { AgentPool, describeRpcError } from './agents.js';
import { addressOf, runBackup } from './backup.js';
import { readClusterConfig } from './cluster-config.js';
import { readInventory, type InventoryHost } from './inventory.js';
import { plan, type ComponentPlan } from './plan.js';
import { runRestore } from './restore.js';
import { listSets, showSet, verifySet } from './sets.js';
import { prune } from './prune.js';
import type { Metrics } from './metrics.js';

export interface CoordinatorDeps {
  pool: AgentPool;
  log: Logger;
  agentPort: number;
  spaceMargin: number;
  insecure: boolean;
  metrics?: Metrics;
}

type Emit = (ev: ProgressEvent) => void;

/** The HTTP/2 session a call came in on; grpc-js keeps it a few objects deep. */
function sessionOf(call: object): Http2Session | undefined {
  let o: unknown = call;
  for (let depth = 0; depth < 4 && o && typeof o === 'object'; depth++) {
    const rec = o as { stream?: { session?: Http2Session }; call?: unknown; nextCall?: unknown };
    if (rec.stream?.session && typeof rec.stream.session.ping === 'function') return rec.stream.session;
    o = rec.call ?? rec.nextCall;
  }
  return undefined;
}

/**
 * Whether the caller is still there, asked with an HTTP/2 ping. A CLI that gave up on a frozen
 * coordinator has closed its connection, but the coordinator learns that only when it next
 * writes to it or its keepalive runs out, which may be after it has committed a set.
 */
function callerAnswers(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal, timeoutMs = 5_000): Promise<boolean> {
  if (signal.aborted || call.cancelled) return Promise.resolve(false);
  const session = sessionOf(call);
  if (!session) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    try {
      const sent = session.ping((err) => {
        clearTimeout(timer);
        resolve(!err && !signal.aborted);
      });
      if (!sent) {
        clearTimeout(timer);
        resolve(false);
      }
    } catch {
      clearTimeout(timer);
      resolve(false);
    }
  });
}

/** A streaming call: progress events, then one final event carrying the summary. */
function streaming<Req>(
  deps: CoordinatorDeps,
  name: string,
  work: (req: Req, emit: Emit, signal: AbortSignal, callerStillThere: () => Promise<boolean>) => Promise<RunSummary>,
): grpc.handleServerStreamingCall<Req, ProgressEvent> {
  return (call) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    (async () => {
      authorize(call, ['operator'], deps.insecure);
      const summary = await work(call.request, (ev) => call.write(ev), abort.signal, () => callerAnswers(call as grpc.ServerWritableStream<unknown, unknown>, abort.signal));
      call.write({ phase: 'summary', backupId: summary.backupId, summary });
    })().then(
      () => call.end(),
      (err) => {
        deps.log.warn(`${name} failed: ${messageOf(err)}`);
        call.emit('error', toServiceError(err));
      },
    );
  };
}

function unary<Req, Res>(deps: CoordinatorDeps, work: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    (async () => {
      authorize(call, ['operator'], deps.insecure);
      return work(call.request);
    })().then(
      (res) => callback(null, res),
      (err) => callback(toServiceError(err)),
    );
  };
}

export function coordinatorHandlers(deps: CoordinatorDeps): CoordinatorHandlers {
  return {
    Backup: streaming(deps, 'backup', async (req, emit, signal, callerStillThere) => {
      const started = Date.now();
      const summary = await runBackup(deps, { buildDir: req.buildDir, target: req.target, components: req.components, nodes: req.nodes, force: req.force }, emit, signal, callerStillThere);
      deps.metrics?.recordBackup(summary, Date.now() - started);
      return summary;
    }),
    Restore: streaming(deps, 'restore', (req, emit, signal) =>
      runRestore(deps, { target: req.target, backupId: req.backupId, node: req.node, components: req.components, dryRun: req.dryRun, force: req.force, buildDir: req.buildDir, options: req.options, fromNode: req.fromNode }, emit, signal),
    ),
    Verify: streaming(deps, 'verify', async (req, emit) => {
      const summary = await verifySet(req.target, req.backupId, emit, { quick: req.quick });
      deps.metrics?.recordVerify(summary);
      return summary;
    }),
    List: unary(deps, async (req) => ({ sets: await listSets(req.target) })),
    Show: unary(deps, (req) => showSet(req.target, req.backupId)),
    Agents: unary(deps, async (req) => {
      const inv = await readInventory(req.buildDir, deps.agentPort);
      const cluster = await readClusterConfig(req.buildDir, inv.file);
      const planned = [...inv.hosts.values()].some((h) => h.components.size > 0) ? plan(inv.hosts, [], [], cluster).hosts : new Map<InventoryHost, ComponentPlan[]>();
      const agents: AgentStatus[] = await Promise.all(
        [...planned.keys()].sort((a, b) => a.name.localeCompare(b.name)).map(async (h) => {
          const base = { node: h.name, address: addressOf(h), expectedComponents: planned.get(h)!.map((p) => (p.optional ? `${p.component}?` : p.component)) };
          try {
            return { ...base, reachable: true, info: await deps.pool.info(addressOf(h), h.name, req.target) };
          } catch (err) {
            return { ...base, reachable: false, error: describeRpcError(err) };
          }
        }),
      );
      return { agents, notCovered: inv.notCovered };
    }),
    Prune: unary(deps, (req) => prune(req, deps.pool)),
  };
}

export async function startCoordinatorServer(deps: CoordinatorDeps, listen: string, creds: grpc.ServerCredentials): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(serverOptions);
  server.addService(proto.Coordinator.service, coordinatorHandlers(deps));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port };
}
