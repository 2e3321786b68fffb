/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most self time and
 * the packages with the most inclusive time. Used to find where a bench row's time goes:
 *
 *   LSBACKUP_BENCH_ONLY=1 node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/run.js
 *   node dist/bench/profile-top.js /tmp/prof/CPU.*.cpuprofile [rows] [skip-seconds] [until-seconds]
 *
 * skip/until select a window of the profile (seconds from its start), e.g. one item's backups
 * and not its restores, read off the bench's log times.
 *
 * The profile samples the main thread only: zlib and fs work in libuv's thread pool shows up as
 * "(idle)" there. Self times are wall-clock samples, so on a busy machine they include time the
 * thread waited for a core.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function owner(url: string, fn: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1]!;
  if (url.startsWith('node:')) return 'node (internal)';
  if (url.includes('/dist/')) return `lsbackup ${url.replace(/.*\/dist\//, '')}`;
  return fn || '(native)';
}

function main(): void {
  const [file, rowsArg, skipArg, untilArg] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: profile-top <file.cpuprofile> [rows=25] [skip-seconds=0] [until-seconds=end]\n');
    process.exitCode = 2;
    return;
  }
  const rows = Number(rowsArg ?? 25);
  const skipUs = Number(skipArg ?? 0) * 1e6;
  const untilUs = untilArg === undefined ? Infinity : Number(untilArg) * 1e6;
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const selfById = new Map<number, number>();
  let elapsed = 0;
  let total = 0;
  p.samples.forEach((id, i) => {
    const d = p.timeDeltas[i] ?? 0;
    elapsed += d;
    if (elapsed < skipUs || elapsed > untilUs) return;
    selfById.set(id, (selfById.get(id) ?? 0) + d);
    total += d;
  });

  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  for (const [id, t] of selfById) {
    const cf = byId.get(id)!.callFrame;
    const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, '')}:${cf.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur)!;
      const k = owner(n.callFrame.url, n.callFrame.functionName);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + t);
    }
  }
  const line = (t: number, what: string) => `${(t / 1000).toFixed(0).padStart(8)} ms ${((100 * t) / total).toFixed(1).padStart(5)}%  ${what}`;
  const out = [`${(total / 1000).toFixed(0)} ms sampled on the main thread`, '', 'self time:'];
  for (const [k, t] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows)) out.push(line(t, k));
  out.push('', 'inclusive, by package:');
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, rows)) out.push(line(t, k));
  process.stdout.write(out.join('\n') + '\n');
}

main();
