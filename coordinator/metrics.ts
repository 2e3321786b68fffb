import http from 'node:http';
import client from 'prom-client';
import type { RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';

/** What an operator alerts on: when each part last succeeded, how big and slow, and what failed. */
export class Metrics {
  readonly registry = new client.Registry();
  private readonly lastSuccess = new client.Gauge({ name: 'lsbackup_last_success_timestamp_seconds', help: 'Time of the last ok backup of a component on a node', labelNames: ['node', 'component'], registers: [this.registry] });
  private readonly partBytes = new client.Gauge({ name: 'lsbackup_last_backup_bytes', help: 'Bytes written by the last backup of a component on a node', labelNames: ['node', 'component'], registers: [this.registry] });
  private readonly failures = new client.Counter({ name: 'lsbackup_backup_failures_total', help: 'Failed backups of a component on a node', labelNames: ['node', 'component'], registers: [this.registry] });
  private readonly lastComplete = new client.Gauge({ name: 'lsbackup_last_complete_backup_timestamp_seconds', help: 'Time of the last complete backup set', registers: [this.registry] });
  private readonly lastStatus = new client.Gauge({ name: 'lsbackup_last_backup_status', help: 'Status of the last backup set: 1 for the status it had, 0 for the others', labelNames: ['status'], registers: [this.registry] });
  private readonly duration = new client.Gauge({ name: 'lsbackup_last_backup_duration_seconds', help: 'Wall time of the last backup set', registers: [this.registry] });
  // Registered at the first verify: a 0 before any verify has run would read as "verify failed".
  private readonly verifyOk = new client.Gauge({ name: 'lsbackup_last_verify_ok', help: '1 when the last verify found every file intact, 0 when it did not', registers: [] });

  recordBackup(s: RunSummary, ms: number): void {
    const now = Date.now() / 1000;
    for (const p of s.parts ?? []) {
      const labels = { node: p.node!, component: p.component! };
      if (p.status === 'ok') {
        this.lastSuccess.set(labels, now);
        this.partBytes.set(labels, Number(p.bytes ?? 0));
      } else if (p.status === 'failed') this.failures.inc(labels);
    }
    for (const st of ['complete', 'partial', 'failed']) this.lastStatus.set({ status: st }, st === s.status ? 1 : 0);
    if (s.status === 'complete') this.lastComplete.set(now);
    this.duration.set(ms / 1000);
  }

  recordVerify(s: RunSummary): void {
    if (!this.registry.getSingleMetric('lsbackup_last_verify_ok')) this.registry.registerMetric(this.verifyOk);
    this.verifyOk.set(s.status === 'ok' ? 1 : 0);
  }

  serve(listen: string): Promise<http.Server> {
    const [host, port] = [listen.replace(/:\d+$/, ''), Number(listen.split(':').pop())];
    const server = http.createServer(async (req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(await this.registry.metrics());
    });
    return new Promise((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve(server)));
  }
}
