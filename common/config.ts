import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { InputError } from './errors.js';

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
  if (issue.code === 'unrecognized_keys') what = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  throw new InputError(`config file ${file}: key '${key}': ${what}`);
}

export const command = z.array(z.string().min(1)).min(1);

export const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, 'expected host:port, e.g. 0.0.0.0:50551');
