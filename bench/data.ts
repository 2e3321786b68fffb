/**
 * Deterministic bench data: trees of text/JSON-like files (compressible) or random bytes
 * (incompressible), file sizes spread log-uniformly between a minimum and a maximum.
 */
import { randomFillSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';

const KiB = 1024;
const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** LSBACKUP_BENCH_SCALE multiplies every data size (1 = the full bench; 0.1 for a quick run). */
export function benchScale(): number {
  const raw = process.env.LSBACKUP_BENCH_SCALE;
  if (raw === undefined || raw === '') return 1;
  const s = Number(raw);
  if (!Number.isFinite(s) || s <= 0) throw new Error(`LSBACKUP_BENCH_SCALE must be a positive number, got '${raw}'`);
  return s;
}

/** mulberry32: small, fast, seeded; the same seed gives the same data on every machine. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * File sizes summing to `total`: log-uniform in [min, max], so there are many small files and a
 * few large ones; the largest size always occurs once when `total` allows it.
 */
export function fileSizes(total: number, min: number, max: number, rand: () => number): number[] {
  const sizes: number[] = [];
  let left = total;
  if (left >= max * 2) {
    sizes.push(max);
    left -= max;
  }
  const lmin = Math.log(min);
  const lmax = Math.log(max);
  while (left > 0) {
    let s = Math.round(Math.exp(lmin + rand() * (lmax - lmin)));
    s = Math.min(s, left);
    if (left - s < min && left - s > 0) s = left; // no runt at the end
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

export interface DataSet {
  root: string;
  files: number;
  bytes: number;
  largest: number;
}

/** Spreads files over 16 directories of 4 subdirectories each, the way config and data trees nest. */
function fileName(root: string, i: number): string {
  return path.join(root, `d${(i % 16).toString().padStart(2, '0')}`, `s${(i >> 4) % 4}`, `f${i.toString().padStart(5, '0')}.${i % 3 === 0 ? 'json' : 'log'}`);
}

const WORDS = (() => {
  const r = rng(7);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  return Array.from({ length: 600 }, () => Array.from({ length: 3 + Math.floor(r() * 8) }, () => letters[Math.floor(r() * 26)]).join(''));
})();

/** A pool of distinct JSON log lines; files are built from random picks, so gzip sees realistic text. */
function linePool(seed: number, count = 40_000): Buffer[] {
  const r = rng(seed);
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const levels = ['info', 'info', 'info', 'debug', 'warn', 'error'];
  const methods = ['GET', 'GET', 'POST', 'PUT', 'DELETE'];
  const hex = () => Math.floor(r() * 2 ** 32).toString(16).padStart(8, '0');
  const pool: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const words = Array.from({ length: 4 + Math.floor(r() * 12) }, () => pick(WORDS)).join(' ');
    const t = new Date(Date.UTC(2026, 10, 27, 13, 0, 0) + Math.floor(r() * 86_400_000)).toISOString();
    const line = {
      ts: t,
      level: pick(levels),
      service: `svc-${Math.floor(r() * 40)}`,
      host: `node${Math.floor(r() * 64)}`,
      method: pick(methods),
      path: `/api/v1/${pick(WORDS)}/${Math.floor(r() * 100000)}`,
      status: pick([200, 200, 200, 201, 204, 301, 404, 500]),
      latency_ms: Math.round(r() * 250000) / 100,
      request_id: `${hex()}${hex()}`,
      user: `user${Math.floor(r() * 5000)}`,
      msg: words,
    };
    pool.push(Buffer.from(JSON.stringify(line) + '\n'));
  }
  return pool;
}

const CHUNK = 4 * MiB;

async function writeFiles(root: string, sizes: number[], fill: (buf: Buffer) => void): Promise<void> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (let i = 0; i < sizes.length; i++) {
    const file = fileName(root, i);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const fh = await fsp.open(file, 'w', 0o644);
    try {
      let left = sizes[i]!;
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        fill(buf);
        await fh.write(buf, 0, n);
        left -= n;
      }
    } finally {
      await fh.close();
    }
  }
}

/** `total` bytes of JSON-lines text (compresses about 4:1 with gzip -6), sizes from `min` to `max`. */
export async function makeTextSet(root: string, total: number, opts: { min?: number; max?: number; seed?: number } = {}): Promise<DataSet> {
  const seed = opts.seed ?? 1;
  const r = rng(seed);
  const sizes = fileSizes(total, opts.min ?? KiB, Math.floor(opts.max ?? 50 * MiB), r);
  const pool = linePool(seed + 1);
  await writeFiles(root, sizes, (buf) => {
    let off = 0;
    while (off < buf.length) off += pool[Math.floor(r() * pool.length)]!.copy(buf, off);
  });
  return { root, files: sizes.length, bytes: total, largest: Math.max(...sizes) };
}

/** `total` bytes of random data (nothing to compress), sizes from `min` to `max`. */
export async function makeRandomSet(root: string, total: number, opts: { min?: number; max?: number; seed?: number } = {}): Promise<DataSet> {
  const r = rng(opts.seed ?? 2);
  const sizes = fileSizes(total, opts.min ?? KiB, Math.floor(opts.max ?? 50 * MiB), r);
  await writeFiles(root, sizes, (buf) => randomFillSync(buf));
  return { root, files: sizes.length, bytes: total, largest: Math.max(...sizes) };
}

/** Hard-links every file of `src` into `dst` (same tree), to make a big set without writing it again. */
export async function linkTree(src: string, dst: string): Promise<void> {
  await fsp.mkdir(dst, { recursive: true });
  for (const ent of await fsp.readdir(src, { withFileTypes: true })) {
    const a = path.join(src, ent.name);
    const b = path.join(dst, ent.name);
    if (ent.isDirectory()) await linkTree(a, b);
    else await fsp.link(a, b);
  }
}

export { KiB, MiB };
