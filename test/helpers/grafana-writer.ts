/**
 * A Grafana stand-in that writes to grafana.db from its own process, as Grafana does while a
 * backup runs. `node --test dist/test/` also loads every helper file as a test, so importing this
 * module does nothing; startWriter spawns a node process that calls runWriter.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { dashboardJson, openDb } from './grafana-db.js';

/**
 * Each transaction inserts `rows` dashboards sharing one batch id and bumps the version of an
 * older one. Prints each committed batch id; stops between transactions on SIGTERM.
 */
export function runWriter(file: string, rows: number, firstBatch: number): void {
  let batch = firstBatch;
  const db = openDb(file, { fileMustExist: true, timeout: 10_000 });
  db.pragma('journal_mode = WAL');
  const insert = db.prepare('INSERT INTO dashboard (version, slug, title, data, org_id, created, updated) VALUES (1, ?, ?, ?, 1, ?, ?)');
  const bump = db.prepare('UPDATE dashboard SET version = version + 1, updated = ? WHERE id = ?');
  const commit = db.transaction((b: number) => {
    const now = new Date().toISOString();
    for (let r = 0; r < rows; r++) insert.run(`b${b}-r${r}`, `batch ${b} row ${r}`, dashboardJson(b, r), now, now);
    bump.run(now, 1 + ((b * 7919) % 1000));
  });
  let stopping = false;
  process.on('SIGTERM', () => (stopping = true));
  // One transaction per turn of the event loop, so SIGTERM is seen between transactions.
  const step = () => {
    if (stopping) {
      db.close();
      process.exit(0);
    }
    commit(batch);
    process.stdout.write(`${batch}\n`);
    batch++;
    setImmediate(step);
  };
  step();
}

export interface Writer {
  child: ChildProcess;
  /** The last batch id the writer reported committed. */
  committed(): number;
  /** Resolves once at least `n` more batches have been committed. */
  waitFor(n: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startWriter(file: string, rows: number, firstBatch: number): Promise<Writer> {
  const code = `import(${JSON.stringify(new URL('./grafana-writer.js', import.meta.url).href)}).then((m) => m.runWriter(${JSON.stringify(file)}, ${rows}, ${firstBatch}))`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let last = firstBatch - 1;
  const waiters: { at: number; resolve: () => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    last = Number(line);
    for (const w of waiters.filter((x) => last >= x.at)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const writer: Writer = {
    child,
    committed: () => last,
    waitFor: (n) => new Promise((resolve, reject) => {
      waiters.push({ at: last + n, resolve });
      exited.then((c) => reject(new Error(`writer exited (${c}) before committing ${n} more batches`)));
    }),
    async stop() {
      child.kill('SIGTERM');
      const c = await exited;
      if (c !== 0) throw new Error(`writer exited ${c}`);
    },
  };
  await writer.waitFor(1);
  return writer;
}
