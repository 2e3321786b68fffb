import * as grpc from '@grpc/grpc-js';
import type { AgentClient } from '../common/proto.js';
import { channelOptionsFor, proto } from '../common/proto.js';
import type { AgentBackupRequest } from '../proto/generated/lsbackup/v1/AgentBackupRequest.js';
import type { AgentRestoreRequest } from '../proto/generated/lsbackup/v1/AgentRestoreRequest.js';
import type { ProgressEvent__Output as ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { AgentReleaseRequest } from '../proto/generated/lsbackup/v1/AgentReleaseRequest.js';
import type { AgentReleaseReply__Output as AgentReleaseReply } from '../proto/generated/lsbackup/v1/AgentReleaseReply.js';
import type { InfoReply__Output as InfoReply } from '../proto/generated/lsbackup/v1/InfoReply.js';
import { kindOf, messageOf } from '../common/errors.js';
import { callUnary, followStream } from '../common/rpc.js';

/** One client per agent address, reused across calls. */
export class AgentPool {
  private readonly clients = new Map<string, AgentClient>();
  constructor(private readonly creds: grpc.ChannelCredentials, private readonly timeoutMs: number) {}

  /** `node` is the inventory name, which is also the agent certificate's name. */
  private client(address: string, node: string): AgentClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new proto.Agent(address, this.creds, channelOptionsFor(address, node));
      this.clients.set(address, c);
    }
    return c;
  }

  info(address: string, node: string, target: string, components: string[] = []): Promise<InfoReply> {
    return this.unary(address, node, (c, done) => c.Info({ target, components }, { deadline: Date.now() + this.timeoutMs }, done));
  }

  /** Backs up the node's parts into the set, handing on the agent's progress events, until its stream ends. */
  backup(address: string, node: string, req: AgentBackupRequest, onEvent: (ev: ProgressEvent) => void, signal: AbortSignal): Promise<void> {
    return followStream(this.client(address, node).Backup(req), onEvent, signal);
  }

  /** Restores the node from the set, handing on the agent's progress events, until its stream ends. */
  restore(address: string, node: string, req: AgentRestoreRequest, onEvent: (ev: ProgressEvent) => void, signal: AbortSignal): Promise<void> {
    return followStream(this.client(address, node).Restore(req), onEvent, signal);
  }

  /** Asks the agent to stop its runs of this set at their next safe point; they go on reporting until they end there. */
  cancel(address: string, node: string, backupId: string): Promise<string[]> {
    return this.unary(address, node, (c, done) => c.Cancel({ backupId }, { deadline: Date.now() + this.timeoutMs }, (err, reply) => done(err, reply?.cancelled)));
  }

  /** No deadline: a deletion takes as long as the files it removes; keepalive notices a lost agent. */
  release(address: string, node: string, req: AgentReleaseRequest): Promise<AgentReleaseReply> {
    return this.unary(address, node, (c, done) => c.Release(req, done));
  }

  /** A unary call, asked again on a fresh channel when the first one finds the agent unreachable. */
  private async unary<T>(address: string, node: string, call: (c: AgentClient, done: (err: grpc.ServiceError | null, reply?: T) => void) => void): Promise<T> {
    const once = () => callUnary<T>((done) => call(this.client(address, node), done));
    try {
      return await once();
    } catch (err) {
      if (kindOf(err) !== 'unavailable') throw err;
      // A channel that failed waits out its reconnect backoff (up to minutes) before trying
      // again; an agent that has just come back should be seen now, so ask on a fresh channel.
      this.clients.get(address)?.close();
      this.clients.delete(address);
      return once();
    }
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export function describeRpcError(err: unknown): string {
  const kind = kindOf(err);
  if (kind === 'unavailable') return `unreachable (${messageOf(err)})`;
  if (kind === 'deadline') return 'no answer before the deadline';
  return messageOf(err);
}
