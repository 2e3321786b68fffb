import { humanBytes } from '../common/units.js';
import { duBytes } from '../common/fsutil.js';

/**
 * What one component's restore tells the operator at its end: what it replaced, where the
 * rollback copy is and how big, the command that puts it back, and what it restarted. The same
 * facts go into the result's meta, so `--json` callers get them without parsing sentences.
 */
export function restoreReport() {
  const rollbacks: { dir: string; bytes: number; replaced: string; howTo: string }[] = [];
  const restarts: string[] = [];
  return {
    async keptRollback(dir: string, what: { replaced: string; howTo: string }): Promise<void> {
      rollbacks.push({ dir, bytes: await duBytes([dir], undefined, Infinity), ...what });
    },
    restarted(what: string): void {
      restarts.push(what);
    },
    meta(): Record<string, string> {
      const m: Record<string, string> = {};
      if (rollbacks.length) {
        m.replaced = rollbacks.map((r) => r.replaced).join('; ');
        m.rollback = rollbacks.map((r) => r.dir).join(' ');
        m.rollback_bytes = String(rollbacks.reduce((s, r) => s + r.bytes, 0));
        m.rollback_command = rollbacks.map((r) => r.howTo).join(' && ');
      }
      if (restarts.length) m.restarted = restarts.join('; ');
      return m;
    },
    lines(label: string): string[] {
      const out = rollbacks.map((r) => `${label}: replaced ${r.replaced}; the replaced data is in ${r.dir} (${humanBytes(r.bytes)}); to roll back, as root: ${r.howTo}`);
      if (restarts.length) out.push(`${label}: restarted ${restarts.join(', ')}`);
      return out;
    },
  };
}
