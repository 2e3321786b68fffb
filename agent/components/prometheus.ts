import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const prometheusSchema = z
  .object({
    config_paths: pathList.default(['/etc/prometheus']),
    ...filesSchema,
  })
  .strict();

export function prometheus(cfg: z.output<typeof prometheusSchema>): Component {
  return filesComponent('prometheus', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
