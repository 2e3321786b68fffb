import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const alertmanagerSchema = z
  .object({
    config_paths: pathList.default(['/etc/prometheus/alertmanager.yml']),
    ...filesSchema,
  })
  .strict();

export function alertmanager(cfg: z.output<typeof alertmanagerSchema>): Component {
  return filesComponent('alertmanager', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
