import { z } from 'zod';
import { hostPort, loadConfig } from '../common/config.js';
import { DEFAULT_AGENT_PORT, DEFAULT_COORDINATOR_PORT } from '../common/proto.js';
import { tlsSchema } from '../common/tls.js';

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
    /** host:port for Prometheus metrics; off when absent. */
    metrics_listen: hostPort.optional(),
  })
  .strict();

export type CoordinatorConfig = z.output<typeof coordinatorConfigSchema>;

export function loadCoordinatorConfig(file: string): CoordinatorConfig {
  return loadConfig(file, coordinatorConfigSchema);
}
