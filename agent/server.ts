import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { AgentHandlers } from '../common/proto.js';
import { proto } from '../common/proto.js';
import { messageOf } from '../common/errors.js';
import { freeBytes } from '../common/fsutil.js';
import { serveStream, serveUnary, startServer, type ServeOptions } from '../common/rpc.js';
import type { InfoRequest__Output as InfoRequest } from '../proto/generated/lsbackup/v1/InfoRequest.js';
import type { InfoReply } from '../proto/generated/lsbackup/v1/InfoReply.js';
import { StopRegistry } from '../common/stops.js';
import { boundedEvent } from '../common/throttle.js';
import { backupNode, lookFor, releasePart, restoreNode, type AgentRuntime } from './runner.js';

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

/** What this agent serves, how big and healthy each component is, and the space left at the target. */
async function info(rt: AgentRuntime, req: InfoRequest): Promise<InfoReply> {
  const found = await Promise.all([...rt.components.values()].map((c) => lookFor(rt, c)));
  const served = found.filter((f) => f.present).map((f) => f.component.name);
  const wanted = req.components.length ? req.components : served;
  const estimates = await Promise.all(
    wanted.filter((w) => served.includes(w as never)).map(async (name) => {
      const c = rt.components.get(name as never)!;
      const [bytes, health] = await Promise.all([rt.estimates ? rt.estimates.measure(c) : c.estimateBytes().catch(() => 0), c.health().catch((err) => ({ status: 'unknown' as const, detail: messageOf(err) }))]);
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

/** The agent's service: each call is a plain function of the runner, for the coordinator only. */
export function agentHandlers(rt: AgentRuntime, insecure: boolean): AgentHandlers {
  const opts: ServeOptions = { roles: ['coordinator'], insecure, onStreamFailure: (_name, message) => rt.log.warn(`call failed: ${message}`) };
  const stops = new StopRegistry<string>();
  return {
    Info: serveUnary(opts, (req) => info(rt, req)),
    Cancel: serveUnary(opts, async (req) => ({ cancelled: stops.cancel((id) => id === req.backupId) })),
    Backup: serveStream(opts, 'backup', async (req, write, { signal }) => void (await backupNode(rt, req, (ev) => write(boundedEvent(ev)), signal))),
    // A cancel, or a coordinator that goes away, stops a restore at its next safe point, never half-way through a component.
    Restore: serveStream(opts, 'restore', async (req, write, { signal }) => {
      const run = stops.begin(req.backupId, `restore of ${req.node || rt.node} from ${req.backupId} on ${rt.node}`);
      try {
        await restoreNode(rt, req, (ev) => write(boundedEvent(ev)), AbortSignal.any([signal, run.signal]));
      } finally {
        run.end();
      }
    }),
    Release: serveUnary(opts, (req, { signal }) => releasePart(rt, req, signal)),
  };
}

export function startAgentServer(rt: AgentRuntime, listen: string, creds: grpc.ServerCredentials, insecure: boolean): Promise<{ server: grpc.Server; port: number }> {
  return startServer(proto.Agent.service, agentHandlers(rt, insecure), listen, creds);
}
