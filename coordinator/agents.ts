import { isIPv4, isIPv6 } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { AgentClient } from '../common/proto.js';
import { agentChannelOptions, channelOptionsFor, proto } from '../common/proto.js';
import type { AgentBackupRequest } from '../proto/generated/lsbackup/v1/AgentBackupRequest.js';
import type { AgentRestoreRequest } from '../proto/generated/lsbackup/v1/AgentRestoreRequest.js';
import type { ProgressEvent__Output as ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { AgentReleaseRequest } from '../proto/generated/lsbackup/v1/AgentReleaseRequest.js';
import type { AgentReleaseReply__Output as AgentReleaseReply } from '../proto/generated/lsbackup/v1/AgentReleaseReply.js';
import type { InfoReply__Output as InfoReply } from '../proto/generated/lsbackup/v1/InfoReply.js';
import { kindOf, messageOf } from '../common/errors.js';
import { callUnary, followStream } from '../common/rpc.js';

/**
 * Info calls in flight at once. The first call to an agent opens its channel, and a TLS
 * handshake costs the coordinator's one thread a few milliseconds of work that nothing else can
 * run during: a thousand at once (a backup of 1,000 nodes) kept it busy past the CLI's 5 s
 * keepalive, and the CLI gave up on it. With 64 the thread answers between handshakes; a
 * thousand agents that answer in 10 ms are all asked within a fraction of a second.
 */
export const INFO_AT_ONCE = 64;

/** One client per agent address, reused across calls and backups while its channel is open (common/proto.ts agentChannelOptions). */
export class AgentPool {
  private readonly clients = new Map<string, AgentClient>();
  private infoRunning = 0;
  private readonly infoWaiting: (() => void)[] = [];
  constructor(private readonly creds: grpc.ChannelCredentials, private readonly timeoutMs: number) {}

  /** `node` is the inventory name, which is also the agent certificate's name. */
  private client(address: string, node: string): AgentClient {
    let c = this.clients.get(address);
    if (!c) {
      c = new proto.Agent(channelTarget(address), this.creds, channelOptionsFor(address, node, agentChannelOptions));
      this.clients.set(address, c);
    }
    return c;
  }

  /** The deadline starts when the call does, not while it waits for one of the INFO_AT_ONCE slots. */
  async info(address: string, node: string, target: string, components: string[] = []): Promise<InfoReply> {
    if (this.infoRunning < INFO_AT_ONCE) this.infoRunning++;
    else await new Promise<void>((r) => this.infoWaiting.push(r));
    try {
      return await this.unary(address, node, (c, done) => c.Info({ target, components }, { deadline: Date.now() + this.timeoutMs }, done));
    } finally {
      // The slot goes straight to the next waiter, so no newcomer takes it in between.
      const next = this.infoWaiting.shift();
      if (next) next();
      else this.infoRunning--;
    }
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

/**
 * The gRPC target for an agent's `host:port`. An address that is an IP goes to grpc-js's IP
 * resolver (`ipv4:`/`ipv6:`): its default DNS resolver makes a c-ares resolver per channel even
 * for an IP, measurable per node when a backup opens a channel to each of a thousand agents.
 */
export function channelTarget(address: string): string {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return isIPv4(host) ? `ipv4:${address}` : isIPv6(host) ? `ipv6:${address}` : address;
}

export function describeRpcError(err: unknown): string {
  const kind = kindOf(err);
  if (kind === 'unavailable') return `unreachable (${messageOf(err)})`;
  if (kind === 'deadline') return 'no answer before the deadline';
  return messageOf(err);
}
