import { promises as fsp } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { AgentHandlers } from '../common/proto.js';
import { proto, serverOptions } from '../common/proto.js';
import { messageOf } from '../common/errors.js';
import { toStatus } from '../common/rpc.js';
import { freeBytes } from '../common/fsutil.js';
import { authorize } from '../common/tls.js';
import type { AgentBackupRequest__Output as AgentBackupRequest } from '../proto/generated/lsbackup/v1/AgentBackupRequest.js';
import type { AgentRestoreRequest__Output as AgentRestoreRequest } from '../proto/generated/lsbackup/v1/AgentRestoreRequest.js';
import type { AgentReleaseRequest__Output as AgentReleaseRequest } from '../proto/generated/lsbackup/v1/AgentReleaseRequest.js';
import type { InfoRequest__Output as InfoRequest } from '../proto/generated/lsbackup/v1/InfoRequest.js';
import type { InfoReply } from '../proto/generated/lsbackup/v1/InfoReply.js';
import type { ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import { backupNode, lookFor, releasePart, restoreNode, type AgentRuntime, type Emit } from './runner.js';

/** The nearest existing directory at or above `p`: the target may not exist yet. */
async function existingAncestor(p: string): Promise<string> {
  let dir = path.resolve(p);
  for (;;) {
    try {
      if ((await fsp.stat(dir)).isDirectory()) return dir;
    } catch {
      /* go up */
    }
    const up = path.dirname(dir);
    if (up === dir) return dir;
    dir = up;
  }
}

/** Runs a handler's work for the coordinator only, with a signal that aborts when the caller goes away. */
function forCoordinator<T>(call: Parameters<typeof authorize>[0] & NodeJS.EventEmitter, insecure: boolean, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController();
  call.on('cancelled', () => abort.abort());
  return (async () => {
    authorize(call, ['coordinator'], insecure);
    return work(abort.signal);
  })();
}

/** A streaming handler: progress events, then the end of the stream or its error status. */
function streaming<Req>(rt: AgentRuntime, insecure: boolean, work: (req: Req, emit: Emit, signal: AbortSignal) => Promise<unknown>): grpc.handleServerStreamingCall<Req, ProgressEvent> {
  return (call) => {
    forCoordinator(call, insecure, (signal) => work(call.request, (ev) => call.write(ev), signal)).then(
      () => call.end(),
      (err) => {
        rt.log.warn(`call failed: ${messageOf(err)}`);
        call.emit('error', toStatus(err));
      },
    );
  };
}

/** A unary handler: its result, or its error status. */
function unary<Req, Res>(insecure: boolean, work: (req: Req, signal: AbortSignal) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    forCoordinator(call, insecure, (signal) => work(call.request, signal)).then(
      (reply) => callback(null, reply),
      (err) => callback(toStatus(err)),
    );
  };
}

async function info(rt: AgentRuntime, req: InfoRequest): Promise<InfoReply> {
  const found = await Promise.all([...rt.components.values()].map((c) => lookFor(rt, c)));
  const served = found.filter((f) => f.present).map((f) => f.component.name);
  const wanted = req.components.length ? req.components : served;
  const estimates = await Promise.all(
    wanted.filter((w) => served.includes(w as never)).map(async (name) => {
      const c = rt.components.get(name as never)!;
      const [bytes, health] = await Promise.all([c.estimateBytes().catch(() => 0), c.health().catch((err) => ({ status: 'unknown' as const, detail: messageOf(err) }))]);
      return { component: name, bytes, health: health.status, detail: health.detail };
    }),
  );
  const detections = found.map((f) => ({ component: f.component.name, present: f.present, configured: f.configured, detail: f.detail }));
  let free = 0;
  let targetError = '';
  if (req.target) {
    try {
      free = await freeBytes(await existingAncestor(req.target));
    } catch (err) {
      targetError = messageOf(err);
    }
  }
  return { node: rt.node, version: rt.version, components: served, freeBytes: free, estimates, targetError, detections };
}

export function agentHandlers(rt: AgentRuntime, insecure: boolean): AgentHandlers {
  return {
    Info: unary(insecure, (req: InfoRequest) => info(rt, req)),
    Backup: streaming(rt, insecure, (req: AgentBackupRequest, emit, signal) => backupNode(rt, req, emit, signal)),
    Restore: streaming(rt, insecure, (req: AgentRestoreRequest, emit, signal) => restoreNode(rt, req, emit, signal)),
    Release: unary(insecure, (req: AgentReleaseRequest, signal) => releasePart(rt, req, signal)),
  };
}

export async function startAgentServer(rt: AgentRuntime, listen: string, creds: grpc.ServerCredentials, insecure: boolean): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(serverOptions);
  server.addService(proto.Agent.service, agentHandlers(rt, insecure));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port };
}
