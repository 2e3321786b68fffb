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
export function channelOptionsFor(address: string, certName: string): grpc.ChannelOptions {
  const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return isIP(host) ? { ...channelOptions, 'grpc.ssl_target_name_override': certName, 'grpc.default_authority': certName } : channelOptions;
}
