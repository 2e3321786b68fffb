import type { ComponentName } from '../common/manifest.js';
import type { Component } from './components/component.js';

/*
 * A component's size estimate walks its whole tree (a stat per file: 10,000 files cost about a
 * tenth of a second, a million several seconds). The coordinator asks for it in Info just before
 * it starts a backup (the free-space check), and the backup wants it again for its progress
 * total. The one Info computed is handed to the backup that follows, once, if it is recent; any
 * other backup measures anew.
 */

/** How old an Info estimate may be for the backup to take it instead of measuring. */
export const ESTIMATE_REUSE_MS = 60_000;

export class Estimates {
  private readonly recent = new Map<ComponentName, { bytes: number; at: number }>();
  constructor(private readonly maxAgeMs = ESTIMATE_REUSE_MS) {}

  /** A fresh estimate (0 when it fails: it is only a guide), remembered for the next backup. */
  async measure(c: Component): Promise<number> {
    const bytes = await c.estimateBytes().catch(() => 0);
    this.recent.set(c.name as ComponentName, { bytes, at: Date.now() });
    return bytes;
  }

  /** The estimate Info made lately, taken (a second backup measures again), or a fresh one. */
  async forBackup(c: Component): Promise<number> {
    const name = c.name as ComponentName;
    const r = this.recent.get(name);
    this.recent.delete(name);
    if (r && Date.now() - r.at <= this.maxAgeMs) return r.bytes;
    return c.estimateBytes().catch(() => 0);
  }
}
