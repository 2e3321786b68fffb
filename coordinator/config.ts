import { z } from 'zod';
import { hostPort, loadConfig } from '../common/config.js';
import { DEFAULT_AGENT_PORT, DEFAULT_COORDINATOR_PORT } from '../common/proto.js';
import { tlsSchema } from '../common/tls.js';
import { InputError } from '../common/errors.js';

export const coordinatorConfigSchema = z
  .object({
    listen: hostPort.default(`127.0.0.1:${DEFAULT_COORDINATOR_PORT}`),
    /** Agent port for hosts whose inventory entry has no lsbackup_agent_port. */
    agent_port: z.number().int().min(1).max(65535).default(DEFAULT_AGENT_PORT),
    /** How long to wait for an agent to answer Info before calling it unreachable. */
    agent_timeout_s: z.number().positive().default(10),
    /** Room to leave free on the target beyond the estimate, as a fraction of it. */
    space_margin: z.number().min(0).default(0.1),
    /**
     * How long a piece of the content store that no set names is left alone, and how long a
     * trash round waits before it is emptied (FORMAT.md "Garbage collection"): longer than any
     * backup takes to name the pieces it writes.
     */
    store_grace_s: z.number().positive().default(3600),
    tls: tlsSchema.optional(),
    insecure: z.boolean().default(false),
    log_level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /** The format new sets are written in (docs/FORMAT.md): 3, the content store; 2 for readers older than it. */
    set_format: z.union([z.literal(2), z.literal(3)]).default(3),
    /**
     * The backup key `lsbackup keys init` writes (FORMAT.md "Format 4"): new sets are encrypted to
     * its recipients. It decrypts nothing; the operator's identity stays off the cluster.
     */
    backup_key_file: z.string().min(1).optional(),
    /** Back up without encryption (format 3) when there is no backup_key_file: an explicit choice, never a default. */
    unencrypted: z.boolean().default(false),
    /** host:port for Prometheus metrics; off when absent. */
    metrics_listen: hostPort.optional(),
  })
  .strict();

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function loadCoordinatorConfig(file: string): CoordinatorConfig {
  const cfg = loadConfig(file, coordinatorConfigSchema);
  if (cfg.backup_key_file && cfg.set_format === 2) throw new InputError(`config file ${file}: key 'set_format': format 2 cannot be encrypted (drop backup_key_file, or set_format)`);
  return cfg;
}
