import os from 'node:os';
import { z } from 'zod';
import { hostPort, loadConfig } from '../common/config.js';
import { tlsSchema } from '../common/tls.js';
import { DEFAULT_AGENT_PORT } from '../common/proto.js';
import { componentsSchema } from './components/index.js';
import { DEFAULT_ROLLBACK_KEEP_DAYS } from './rollbacks.js';

export const agentConfigSchema = z
  .object({
    /** Inventory name of this node; the coordinator sends it with every request. */
    node: z.string().default(os.hostname()),
    listen: hostPort.default(`0.0.0.0:${DEFAULT_AGENT_PORT}`),
    /** Locks, rollback copies and scratch files; never on the shared location. */
    state_dir: z.string().default('/var/lib/lsbackup'),
    compression_level: z.number().int().min(0).max(9).default(6),
    /** Rollback copies a restore leaves under state_dir are removed after this many days; each component's newest stays. */
    rollback_keep_days: z.number().min(0).default(DEFAULT_ROLLBACK_KEEP_DAYS),
    tls: tlsSchema.optional(),
    insecure: z.boolean().default(false),
    log_level: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /**
     * Look on the node for every component agent.yaml does not name (LambdaStack's paths, units and
     * versions). false: serve only the components named here.
     */
    detect: z.boolean().default(true),
    components: componentsSchema.default({}),
  })
  .strict();

export type AgentConfig = z.output<typeof agentConfigSchema>;

export function loadAgentConfig(file: string): AgentConfig {
  return loadConfig(file, agentConfigSchema);
}
