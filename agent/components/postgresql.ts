import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema, pathList } from './files.js';

export const postgresqlSchema = z
  .object({
    config_paths: pathList.default(['/etc/postgresql/15/main', '/var/lib/postgresql/.pgpass']),
    ...filesSchema,
  })
  .strict();

export function postgresql(cfg: z.output<typeof postgresqlSchema>): Component {
  return filesComponent('postgresql', cfg.config_paths, { afterRestore: cfg.after_restore_command });
}
