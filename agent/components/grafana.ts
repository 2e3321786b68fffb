import path from 'node:path';
import { z } from 'zod';
import type { Component } from './component.js';
import { filesComponent, filesSchema } from './files.js';

export const grafanaSchema = z
  .object({
    data_dir: z.string().default('/var/lib/grafana'),
    ...filesSchema,
  })
  .strict();

/** The seed's 2.2: /var/lib/grafana without png/ (rendered images, not worth keeping). */
export function grafana(cfg: z.output<typeof grafanaSchema>): Component {
  const png = path.join(cfg.data_dir, 'png');
  return filesComponent('grafana', [cfg.data_dir], { exclude: (p) => p === png, afterRestore: cfg.after_restore_command });
}
