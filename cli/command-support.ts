import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { CommanderError, type Command } from 'commander';
import { checked, entrySchema, manifestSchemaOf, type Entry, type Manifest } from '../common/manifest.js';
import { IntegrityError } from '../common/errors.js';
import type { FilesChunk__Output as FilesChunk } from '../proto/generated/lsbackup/v1/FilesChunk.js';
import { z } from 'zod';
import type { RunSummary__Output as RunSummary } from '../proto/generated/lsbackup/v1/RunSummary.js';
import type { SetInfo__Output as SetInfo } from '../proto/generated/lsbackup/v1/SetInfo.js';
import type { ShowReply__Output as ShowReply } from '../proto/generated/lsbackup/v1/ShowReply.js';
import { connect, streamCall, unaryCall, type GlobalOptions } from './client.js';
import { ProgressView } from './output.js';

/** Exit codes: 0 done and whole; 1 partial, failed or mismatching; 2 the request itself was wrong. */
export const EXIT_INPUT = 2;

/** A usage error found by a command itself: main.ts prints it as one line and exits EXIT_INPUT. */
export function inputError(code: string, message: string): CommanderError {
  return new CommanderError(EXIT_INPUT, `lsbackup.${code}`, message);
}

export const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(',').map((s) => s.trim()).filter(Boolean)];
export const repeat = (v: string, prev: string[] = []) => [...prev, v];
export const absTarget = (t: string) => path.resolve(t);

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** The result: one JSON object with --json, else what `human` writes. */
export function print(cmd: Command, result: unknown, human: () => string): void {
  process.stdout.write(globals(cmd).json ? JSON.stringify({ result }) + '\n' : human() + '\n');
}

type Coordinator = ReturnType<typeof connect>;

/** A streaming call, its progress shown as it comes, to its summary. */
export async function followStream(cmd: Command, start: (c: Coordinator) => grpc.ClientReadableStream<never>, askToStop?: (c: Coordinator, backupId: string) => Promise<void>): Promise<RunSummary> {
  const g = globals(cmd);
  const view = new ProgressView(Boolean(g.json));
  const c = connect(g);
  try {
    return await streamCall(start(c), (ev) => view.event(ev), askToStop && ((id) => askToStop(c, id)));
  } finally {
    view.stop();
  }
}

/** A unary call to the coordinator the global options name. */
export function unary<T>(cmd: Command, call: (c: Coordinator, cb: grpc.requestCallback<T>) => void): Promise<T> {
  const c = connect(globals(cmd));
  return unaryCall<T>((cb) => call(c, cb));
}

/** One set's info, and its manifest when it has one (an incomplete set has none). */
export async function fetchManifest(cmd: Command, target: string, id: string): Promise<{ set: SetInfo; manifest?: Manifest }> {
  const r = await unary<ShowReply>(cmd, (c, cb) => c.Show({ target: absTarget(target), backupId: id }, cb));
  return { set: r.set!, manifest: r.manifestJson ? manifestFromCoordinator(r.manifestJson, id) : undefined };
}

/** The coordinator checked the manifest it read; the CLI still believes nothing unchecked it is sent. */
function manifestFromCoordinator(json: string, id: string): Manifest {
  const raw = JSON.parse(json) as { format?: unknown };
  const schema = manifestSchemaOf(raw.format);
  if (!schema) throw new IntegrityError(`the manifest of ${id} the coordinator sent has format '${String(raw.format)}', which this lsbackup does not read`);
  return checked(schema, raw, `the manifest of ${id} the coordinator sent`) as Manifest;
}

const fileLineSchema = z.object({ node: z.string(), component: z.string() }).and(entrySchema);
export type FileLine = Entry & { node: string; component: string };

/** A set's entries (of one node and component when given), streamed from the coordinator batch by batch. */
export async function* fetchFiles(cmd: Command, target: string, id: string, filter: { node?: string; component?: string; identity?: string } = {}): AsyncGenerator<FileLine> {
  const c = connect(globals(cmd));
  const call = c.Files({ target: absTarget(target), backupId: id, node: filter.node ?? '', component: filter.component ?? '', identity: filter.identity ?? '' }) as grpc.ClientReadableStream<FilesChunk>;
  try {
    for await (const chunk of call as AsyncIterable<FilesChunk>) {
      for (const line of chunk.entriesJson) {
        let raw: unknown;
        try {
          raw = JSON.parse(line);
        } catch {
          throw new IntegrityError(`the coordinator sent an entry of ${id} that is not JSON`);
        }
        yield checked(fileLineSchema, raw, `an entry of ${id} the coordinator sent`) as FileLine;
      }
    }
  } finally {
    call.cancel();
  }
}
