import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const rabbitmqSchema = z
  .object({
    config_paths: pathList.default(['/etc/rabbitmq/rabbitmq.conf', '/etc/rabbitmq/enabled_plugins', '/etc/rabbitmq/advanced.config']),
    ...filesSchema,
  })
  .strict();

export function rabbitmq(cfg: z.output<typeof rabbitmqSchema>): Component {
  return filesComponent('rabbitmq', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
