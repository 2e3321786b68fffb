import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'winston';
import type { CoordinatorHandlers } from '../common/proto.js';
import { proto } from '../common/proto.js';
import { serveStream, serveUnary, startServer, type CallContext, type ServeOptions } from '../common/rpc.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import { agentStatus } from './agent-status.js';
import type { AgentPool } from './agents.js';
import { runBackup } from './backup.js';
import { runRestore } from './restore.js';
import { listSets, setFiles, showSet, verifyAllSets, verifySet } from './sets.js';
import { boundedEvent } from '../common/throttle.js';
import { prune } from './prune.js';
import type { Metrics } from './metrics.js';
import { StopRegistry } from '../common/stops.js';
import type { RunKey } from './restore.js';
import type { BackupKey } from '../common/keys.js';

export interface CoordinatorDeps {
  pool: AgentPool;
  log: Logger;
  agentPort: number;
  spaceMargin: number;
  /** How long an unnamed piece of the content store is left alone (config `store_grace_s`). */
  storeGraceMs: number;
  /** The format new sets are written in; 3 when absent. */
  setFormat?: 2 | 3;
  /** Config `backup_key_file`: new sets are encrypted (format 4) with it. */
  backupKey?: BackupKey;
  /** Config `unencrypted`: without a key, back up in the clear rather than refuse. */
  unencrypted?: boolean;
  insecure: boolean;
  metrics?: Metrics;
  /** Restores that `lsbackup cancel` (or the CLI's Ctrl-C) can ask to stop at their next safe point. */
  stops: StopRegistry<RunKey>;
}

type Emit = (ev: ProgressEvent) => void;

/** A coordinator run streams its progress, then one final event carrying the summary. */
function run<Req>(opts: ServeOptions, name: string, work: (req: Req, emit: Emit, ctx: CallContext) => Promise<RunSummary>): grpc.handleServerStreamingCall<Req, ProgressEvent> {
  return serveStream<Req, ProgressEvent>(opts, name, async (req, write, ctx) => {
    const summary = await work(req, (ev) => void write(boundedEvent(ev)), ctx);
    write({ phase: 'summary', backupId: summary.backupId, summary });
  });
}

/** The coordinator's service: each call is a plain function of a use-case, for operators only. */
export function coordinatorHandlers(deps: CoordinatorDeps): CoordinatorHandlers {
  const opts: ServeOptions = { roles: ['operator'], insecure: deps.insecure, onStreamFailure: (name, message) => deps.log.warn(`${name} failed: ${message}`) };
  return {
    Cancel: serveUnary(opts, async (req) => ({
      cancelled: deps.stops.cancel((k) => (!req.target || k.target === req.target) && (!req.backupId || k.backupId === req.backupId) && (!req.node || k.node === req.node)),
    })),
    Backup: run(opts, 'backup', async (req, emit, { signal, callerAnswers }) => {
      const started = Date.now();
      const summary = await runBackup(deps, { buildDir: req.buildDir, target: req.target, components: req.components, nodes: req.nodes, force: req.force, rehash: req.rehash }, emit, signal, callerAnswers);
      deps.metrics?.recordBackup(summary, Date.now() - started);
      return summary;
    }),
    Restore: run(opts, 'restore', (req, emit, { signal }) =>
      runRestore(deps, { target: req.target, backupId: req.backupId, node: req.node, components: req.components, dryRun: req.dryRun, force: req.force, buildDir: req.buildDir, options: req.options, fromNode: req.fromNode, identity: req.identity, keyIds: req.keyIds }, emit, signal),
    ),
    Verify: run(opts, 'verify', async (req, emit) => {
      const opts = { quick: req.quick, sample: req.sample, backupKey: deps.backupKey, identity: req.identity, keyIds: req.keyIds };
      const summary = req.backupId ? await verifySet(req.target, req.backupId, emit, opts) : await verifyAllSets(req.target, emit, opts);
      deps.metrics?.recordVerify(summary);
      return summary;
    }),
    List: serveUnary(opts, async (req) => ({ sets: await listSets(req.target) })),
    Show: serveUnary(opts, (req) => showSet(req.target, req.backupId)),
    Files: serveStream(opts, 'files', async (req, write, { signal }) => {
      for await (const chunk of setFiles(req.target, req.backupId, { node: req.node, component: req.component, identity: req.identity, keyIds: req.keyIds })) {
        if (signal.aborted) return;
        await write({ entriesJson: chunk });
      }
    }),
    Agents: serveUnary(opts, (req) => agentStatus(deps, req)),
    Prune: serveUnary(opts, (req) => prune(req, deps.pool, { storeGraceMs: deps.storeGraceMs, log: (line) => deps.log.info(`prune ${req.target}: ${line}`) })),
  };
}

export function startCoordinatorServer(deps: CoordinatorDeps, listen: string, creds: grpc.ServerCredentials): Promise<{ server: grpc.Server; port: number }> {
  return startServer(proto.Coordinator.service, coordinatorHandlers(deps), listen, creds);
}
