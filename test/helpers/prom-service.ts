/**
 * A stand-in for a systemd service, for the Prometheus and Alertmanager tests: a unit file whose
 * ExecStart holds the real command line, and scripts that act as daemon-reload, start, stop and
 * restart. daemon-reload copies the unit to a "loaded" copy and start runs what the loaded copy
 * says, so a restart without a reload keeps the old flags, as with systemd.
 */
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../../common/exec.js';
import { tempDir } from './harness.js';

export interface FakeService {
  dir: string;
  unitFile: string;
  commands: { daemonReload: string[]; start: string[]; stop: string[]; restart: string[] };
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The service's output so far, for failure messages. */
  log(): string;
}

/** Fails (never skips) when a Debian binary the tests need is missing. */
export function requireBinaries(...bins: string[]): void {
  const missing = bins.filter((b) => !existsSync(b));
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: apt-get install prometheus prometheus-alertmanager`);
}

export { freePort } from '../../demo/cluster.js';

/** systemd's ExecStart with one argument per continuation line, as LambdaStack writes it. */
export function unitText(description: string, argv: string[]): string {
  const exec = argv.map((a, i) => (i === 0 ? `ExecStart=${a}` : `  ${a}`)).join(' \\\n');
  return `[Unit]\nDescription=${description}\nAfter=network-online.target\n\n[Service]\nUser=root\n${exec}\nRestart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n`;
}

const alive = `alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]; }`;

export async function fakeService(name: string, argv: string[]): Promise<FakeService> {
  const dir = tempDir(`svc-${name}`);
  const unitFile = path.join(dir, `${name}.service`);
  await fsp.writeFile(unitFile, unitText(name, argv));
  await fsp.copyFile(unitFile, path.join(dir, 'loaded.service'));
  const script = async (file: string, body: string) => {
    await fsp.writeFile(path.join(dir, file), `#!/bin/bash\nset -eu\ncd '${dir}'\n${alive}\n${body}\n`, { mode: 0o755 });
    return ['bash', path.join(dir, file)];
  };
  const daemonReload = await script('daemon-reload.sh', `cp '${unitFile}' loaded.service`);
  const start = await script(
    'start.sh',
    `if [ -f pid ] && alive "$(cat pid)"; then exit 0; fi
cmd=$(sed -e ':a' -e '/\\\\$/{N;s/\\\\\\n//;ba}' loaded.service | sed -n 's/^ExecStart=//p' | tail -n1)
[ -n "$cmd" ] || { echo "no ExecStart in loaded.service" >&2; exit 1; }
echo "start: $cmd" >> log
( eval "exec $cmd" ) >> log 2>&1 < /dev/null &
echo $! > pid`,
  );
  // The zombie check matters where PID 1 is slow to reap an orphan.
  const stop = await script(
    'stop.sh',
    `[ -f pid ] || exit 0
p=$(cat pid)
if alive "$p"; then
  kill "$p" 2>/dev/null || true
  for i in $(seq 1 200); do alive "$p" || break; sleep 0.1; done
  if alive "$p"; then kill -9 "$p"; sleep 0.2; fi
fi
rm -f pid`,
  );
  const restart = await script('restart.sh', `bash '${dir}/stop.sh'\nbash '${dir}/start.sh'`);
  return {
    dir,
    unitFile,
    commands: { daemonReload, start, stop, restart },
    start: async () => void (await run(start)),
    stop: async () => void (await run(stop)),
    log: () => (existsSync(path.join(dir, 'log')) ? readFileSync(path.join(dir, 'log'), 'utf8') : ''),
  };
}

export async function waitHttp(url: string, timeoutMs = 30_000, service?: FakeService): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = String((err as { cause?: unknown }).cause ?? err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms (${last})${service ? `\n${service.log().slice(-3000)}` : ''}`);
}

export async function getJson<T>(url: string, init?: RequestInit): Promise<T> {
  const r = await fetch(url, init);
  const text = await r.text();
  if (!r.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${r.status}: ${text}`);
  return JSON.parse(text) as T;
}
