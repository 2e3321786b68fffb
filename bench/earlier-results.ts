/**
 * A run of some items only (LSBACKUP_BENCH_ONLY) rewrites RESULTS.md without losing the other
 * items: their rows and detail lines are read back from the file it replaces, marked with the run
 * they came from, and merged in by item number.
 */
import { promises as fsp } from 'node:fs';
import type { BenchRow } from './measure.js';

/** The item a row or detail line belongs to: "5. CLI ..." and "2b. same ..." give 5 and 2. */
export function itemOf(text: string): number | undefined {
  const m = /^(\d+)[a-z]?\./.exec(text);
  return m ? Number(m[1]) : undefined;
}

const FROM = /\[from the run of [^\]]*\]$/;

function mark(text: string, run: string): string {
  return FROM.test(text) ? text : `${text} [from the run of ${run}]`;
}

/** Splits a Markdown table row on the bars that are not escaped, and unescapes the cells. */
function cells(line: string): string[] {
  return line
    .slice(1, line.trimEnd().length - 1)
    .split(/(?<!\\)\|/)
    .map((c) => c.trim().replace(/\\\|/g, '|'));
}

export interface EarlierResults {
  rows: BenchRow[];
  notes: string[];
}

/** The rows and detail lines of `file` for items this run did not run (none if there is no file). */
export async function earlierResults(file: string, ran: Set<number>): Promise<EarlierResults> {
  const text = await fsp.readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  const date = /^- Date: ([^;\s]+)/m.exec(text)?.[1] ?? 'unknown date';
  const scale = /LSBACKUP_BENCH_SCALE=([^*\s]+)/.exec(text)?.[1] ?? '?';
  const run = `${date}, scale ${scale}`;
  const keep = (t: string) => {
    const n = itemOf(t);
    return n === undefined || !ran.has(n);
  };
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  let inDetails = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('## ')) inDetails = line === '## Details';
    if (line.startsWith('| ') && !line.startsWith('| what |')) {
      const [what, ours, base, ratio, target, holds] = cells(line);
      if (what === undefined || !keep(what)) continue;
      rows.push({ what: mark(what, run), ours: ours ?? '', base: base ?? '', ratio: Number(ratio), target: target ?? '', holds: holds === 'yes' ? true : holds === 'NO' ? false : undefined });
    } else if (inDetails && line.startsWith('- ') && keep(line.slice(2))) {
      notes.push(mark(line.slice(2), run));
    }
  }
  return { rows, notes };
}

/** Rows (or notes) in item order; within an item, in the order they came. */
export function byItem<T>(xs: T[], textOf: (x: T) => string): T[] {
  return xs
    .map((x, i) => ({ x, i, n: itemOf(textOf(x)) ?? Number.MAX_SAFE_INTEGER }))
    .sort((a, b) => a.n - b.n || a.i - b.i)
    .map((e) => e.x);
}
