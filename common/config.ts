import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { InputError } from './errors.js';
import { oneLine, shown } from './quote.js';

/**
 * Loads a YAML config and checks it against its schema at start, so a wrong key or type is
 * reported with the file, the key and what was expected before any backup runs.
 */
export function loadConfig<S extends z.ZodType>(file: string, schema: S): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`config file ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message}`);
  }
  let data: unknown;
  try {
    data = YAML.parse(text) ?? {};
  } catch (err) {
    throw new InputError(`config file ${file}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return parseConfig(file, data, schema);
}

export function parseConfig<S extends z.ZodType>(file: string, data: unknown, schema: S): z.output<S> {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = issue.path.length ? issue.path.join('.') : '(top level)';
  let what = issue.message;
  if (issue.code === 'unrecognized_keys') what = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${shown(k)}'`).join(', ')}`;
  throw new InputError(`config file ${file}: key '${shown(key)}': ${oneLine(what, 300)}`);
}

export const command = z.array(z.string().min(1)).min(1);

/** A file or directory setting: a relative path would depend on the daemon's working directory. */
export const absolutePath = z.string().refine((p) => path.isAbsolute(p), 'expected an absolute path');

/**
 * A daemon's listen address. Port 0 would make the system pick a random port that no coordinator
 * or CLI can know, and above 65535 grpc-js fails at bind with a message naming neither file nor
 * key: both are config errors, reported as such.
 */
export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, e.g. 0.0.0.0:50551')
  .refine((v) => {
    const port = Number(v.slice(v.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65535;
  }, 'expected a port from 1 to 65535');
