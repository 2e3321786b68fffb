import cliProgress from 'cli-progress';
import type { ProgressEvent__Output as ProgressEvent } from '../proto/generated/lsbackup/v1/ProgressEvent.js';
import type { ComponentResult__Output as ComponentResult } from '../proto/generated/lsbackup/v1/ComponentResult.js';
import { humanBytes } from '../common/units.js';
import { escapeControl } from '../common/quote.js';
import type { FileLine } from './command-support.js';

export function table(rows: string[][], header: string[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** After a restore, per component: what it replaced, where the rollback copy is, how to put it back, what it restarted. */
export function restoreOutcome(parts: ComponentResult[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    const m = p.meta ?? {};
    const key = `${p.node}/${p.component}`;
    if (m.rollback) {
      out.push(`${key}: replaced ${m.replaced}; rollback copy ${m.rollback} (${humanBytes(Number(m.rollback_bytes ?? 0))}), removed after rollback_keep_days unless it is the newest`);
      out.push(`${key}: to roll back, as root on ${p.node}: ${m.rollback_command}`);
    }
    if (m.restarted) out.push(`${key}: restarted ${m.restarted}`);
  }
  return out;
}

/** One entry of \`show --files\`: type, mode, owner, size, where. */
export function fileLine(e: FileLine): string {
  const type = e.type === 'dir' ? 'd' : e.type === 'symlink' ? 'l' : e.linkOf ? 'h' : '-';
  const where = e.type === 'symlink' ? `${e.path} -> ${e.linkTarget}` : e.linkOf ? `${e.path} => ${e.linkOf}` : e.path;
  return `${type} ${(e.mode & 0o7777).toString(8).padStart(4, '0')} ${e.uid}:${e.gid} ${String(e.size).padStart(10)} ${e.node}/${e.component} ${escapeControl(where)}`;
}

export function partsTable(parts: ComponentResult[]): string {
  return table(
    parts.map((p) => [p.node, p.component, p.status + (p.reason ? `: ${p.reason}` : ''), humanBytes(Number(p.bytes)), `${(Number(p.durationMs) / 1000).toFixed(1)}s`]),
    ['NODE', 'COMPONENT', 'STATUS', 'SIZE', 'DURATION'],
  );
}

/**
 * Shows a stream's progress: live bars per node and component on a terminal, JSON lines
 * otherwise (stdout with --json, stderr without, so stdout keeps only the result).
 */
export class ProgressView {
  private readonly bars = new Map<string, cliProgress.SingleBar>();
  private readonly multi?: cliProgress.MultiBar;
  constructor(private readonly json: boolean) {
    if (!json && process.stderr.isTTY) {
      this.multi = new cliProgress.MultiBar(
        {
          stream: process.stderr,
          format: '{key} |{bar}| {percentage}% {doneH}/{totalH} {speed} ETA {eta_formatted} {msg}',
          hideCursor: true,
          clearOnComplete: false,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
    }
  }

  event(ev: ProgressEvent): void {
    if (this.json) {
      process.stdout.write(JSON.stringify({ event: ev }) + '\n');
      return;
    }
    if (!this.multi) {
      process.stderr.write(JSON.stringify({ event: ev }) + '\n');
      return;
    }
    if (!ev.component) {
      if (ev.message) this.multi.log(`${ev.node ? `${ev.node}: ` : ''}${ev.message}\n`);
      return;
    }
    const key = `${ev.node}/${ev.component}`;
    let bar = this.bars.get(key);
    const total = Math.max(Number(ev.bytesTotal), Number(ev.bytesDone), 1);
    if (!bar) {
      bar = this.multi.create(total, 0, { key: key.padEnd(24), doneH: '', totalH: '', speed: '', msg: '' });
      (bar as unknown as { started: number }).started = Date.now();
      this.bars.set(key, bar);
    }
    const started = (bar as unknown as { started: number }).started;
    const finished = ['done', 'failed', 'skipped'].includes(ev.phase);
    // A finished part reports the size it wrote (compressed); the bar counts bytes read.
    const done = finished ? bar.getTotal() : Number(ev.bytesDone);
    if (!finished) bar.setTotal(total);
    const rate = done / Math.max((Date.now() - started) / 1000, 0.001);
    const msg = ev.phase === 'running' ? ev.message : finished ? `${ev.phase}${ev.phase === 'done' ? `, wrote ${humanBytes(Number(ev.bytesDone))}` : ''}${ev.message ? `: ${ev.message}` : ''}` : ev.message;
    bar.update(done, { doneH: humanBytes(done), totalH: humanBytes(bar.getTotal()), speed: `${humanBytes(rate)}/s`, msg });
    if (ev.phase === 'info' && ev.message) this.multi.log(`${key}: ${ev.message}\n`);
  }

  stop(): void {
    this.multi?.stop();
  }
}
