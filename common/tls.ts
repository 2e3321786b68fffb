import type { PeerCertificate } from 'node:tls';
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { InputError, PermissionError } from './errors.js';

/**
 * mTLS is the default: every daemon and the CLI hold a key and certificate issued by the
 * cluster's own CA (`lsbackup certs`). A certificate's OU is its role: agent, coordinator, operator.
 */
export const tlsSchema = z
  .object({
    ca: z.string(),
    cert: z.string(),
    key: z.string(),
  })
  .strict();
export type TlsConfig = z.output<typeof tlsSchema>;

export type Role = 'agent' | 'coordinator' | 'operator';

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new InputError(`${what} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
}

export function serverCredentials(tls: TlsConfig | undefined, insecure: boolean): grpc.ServerCredentials {
  if (insecure) return grpc.ServerCredentials.createInsecure();
  if (!tls) throw new InputError('no tls section in the config: give ca, cert and key, or start with --insecure (not for production)');
  // true: the client must present a certificate signed by our CA, not just any public one.
  return grpc.ServerCredentials.createSsl(read(tls.ca, 'CA certificate'), [{ private_key: read(tls.key, 'private key'), cert_chain: read(tls.cert, 'certificate') }], true);
}

export function clientCredentials(tls: TlsConfig | undefined, insecure: boolean): grpc.ChannelCredentials {
  if (insecure) return grpc.credentials.createInsecure();
  if (!tls) throw new InputError('no TLS settings for the client: give ca, cert and key, or use --insecure (not for production)');
  return grpc.credentials.createSsl(read(tls.ca, 'CA certificate'), read(tls.key, 'private key'), read(tls.cert, 'certificate'));
}

/** Checks, per call, that the caller's certificate has the role this service serves. */
export function authorize(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }, allowed: Role[], insecure: boolean): void {
  if (insecure) return;
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const ou = cert?.subject?.OU;
  const role = Array.isArray(ou) ? ou[0] : ou;
  if (!cert || !role || !allowed.includes(role as Role)) {
    throw new PermissionError(`caller certificate ${cert?.subject?.CN ? `'${cert.subject.CN}' ` : ''}with role '${role ?? 'none'}' may not call this service (allowed: ${allowed.join(', ')})`);
  }
}
