import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../proto/generated/lsbackup.js';
import type { AgentClient, AgentHandlers } from '../proto/generated/lsbackup/v1/Agent.js';
import type { CoordinatorClient, CoordinatorHandlers } from '../proto/generated/lsbackup/v1/Coordinator.js';

export type { AgentClient, AgentHandlers, CoordinatorClient, CoordinatorHandlers };

const here = path.dirname(fileURLToPath(import.meta.url));
// Compiled code sits one level deeper (dist/common) than the source (common).
const protoFile = [path.resolve(here, '../proto/lsbackup.proto'), path.resolve(here, '../../proto/lsbackup.proto')].find((p) => existsSync(p));
if (!protoFile) throw new Error(`proto/lsbackup.proto not found next to ${here}; the install is incomplete`);

// int64 sizes arrive as numbers: a backup never comes near 2^53 bytes.
const definition = protoLoader.loadSync(protoFile, { longs: Number, enums: String, defaults: true, oneofs: true, keepCase: false });
export const proto = (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).lsbackup.v1;

// grpc-js prints its own line beside ours for every failure we report (a port in use gives two
// lines); every error reaches us through a callback anyway. GRPC_VERBOSITY=DEBUG brings them back.
if (!process.env.GRPC_VERBOSITY) grpc.setLogVerbosity(grpc.logVerbosity.NONE);

export const DEFAULT_AGENT_PORT = 50551;
export const DEFAULT_COORDINATOR_PORT = 50550;

/** Keepalive pings notice a dead peer (kill -9, link down) during a long stream within seconds. */
export const channelOptions: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 5_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.max_pings_without_data': 0,
};

/**
 * The coordinator's channels to its agents. It keeps one per agent (coordinator/agents.ts), a
 * thousand on a large cluster, and what they cost while no backup runs was measured with 1,000
 * simulated agents (bench item 11): with idle channels pinging every 5 s (200 pings a second)
 * an idle coordinator used 22-29 ms of CPU a second; without them the agents' own 5 s pings
 * (serverOptions) still cost it 8-10 ms a second; 1,000 open channels hold 100-130 MiB.
 * Reconnecting them all costs ~5 s of CPU (a TLS handshake each). So:
 *   - no pings while a channel has no call: a call on a channel whose peer has gone sends one
 *     at once (grpc-js pings a channel that missed one as its next call starts), so a dead
 *     agent is still found within the keepalive timeout, and a stream is watched as before;
 *   - a channel is closed after AGENT_CHANNEL_IDLE_MS without calls: about the time after which
 *     keeping it has cost as much as reconnecting it would. A backup soon after another (a
 *     retry, a second build directory) finds its channels open; the nightly one reconnects.
 */
export const AGENT_CHANNEL_IDLE_MS = 5 * 60_000;
export const agentChannelOptions: grpc.ChannelOptions = {
  ...channelOptions,
  'grpc.keepalive_permit_without_calls': 0,
  'grpc.client_idle_timeout_ms': AGENT_CHANNEL_IDLE_MS,
};

export const serverOptions: grpc.ServerOptions = {
  'grpc.keepalive_time_ms': 5_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.http2.min_ping_interval_without_data_ms': 1_000,
  'grpc.http2.max_ping_strikes': 0,
};

/**
 * Channel options for reaching `address` whose certificate is issued to `certName`. Peers are
 * usually reached by IP, and an IP is not a valid TLS server name (RFC 6066), so the name the
 * certificate carries is checked instead; the chain is still checked against the cluster CA.
 */
export function channelOptionsFor(address: string, certName: string, base: grpc.ChannelOptions = channelOptions): grpc.ChannelOptions {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return isIP(host) ? { ...base, 'grpc.ssl_target_name_override': certName, 'grpc.default_authority': certName } : base;
}
