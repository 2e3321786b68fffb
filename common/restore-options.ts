import { z } from 'zod';
import { InputError } from './errors.js';
import { shown } from './quote.js';

/**
 * The `--option key=value` pairs each component's restore understands. They live here, apart
 * from the components, so the coordinator can refuse a wrong option before it takes the target's
 * lock or hashes a file, without importing an agent component; each component parses its own
 * options with `parseRestoreOptions` from the same schema.
 */
const flag = z.enum(['true', 'false'], { error: 'expected true or false' });

export const restoreOptionSchemas = {
  postgresql: z
    .object({
      /** Only this database (also `--database`). */
      database: z.string().min(1, 'expected a database name'),
    })
    .partial()
    .strict(),
  rabbitmq: z
    .object({
      messages: flag,
      definitions: flag,
    })
    .partial()
    .strict(),
  elasticsearch: z
    .object({
      rename_suffix: z.string().regex(/^[a-z0-9_.+-]+$/, 'use lowercase letters, digits and _ . + - only'),
      close_existing: flag,
      include_global_state: flag,
      indices: z.string().min(1, 'expected index names or patterns'),
      elasticsearch_config: flag,
    })
    .partial()
    .strict()
    .refine((o) => !(o.rename_suffix !== undefined && o.close_existing === 'true'), { error: 'give rename_suffix or close_existing=true, not both' }),
} as const;

export type OptionComponent = keyof typeof restoreOptionSchemas;
export type RestoreOptions<C extends OptionComponent> = z.output<(typeof restoreOptionSchemas)[C]>;

const keysOf = (c: OptionComponent): string[] => Object.keys(restoreOptionSchemas[c].shape);

/** Which components take an option called `key`. */
function takersOf(key: string): OptionComponent[] {
  return (Object.keys(restoreOptionSchemas) as OptionComponent[]).filter((c) => keysOf(c).includes(key));
}

/** A component's options out of all the request's: only the keys it takes, checked. One line for a wrong value. */
export function parseRestoreOptions<C extends OptionComponent>(component: C, options: Record<string, string>): RestoreOptions<C> {
  const own = Object.fromEntries(Object.entries(options).filter(([k]) => keysOf(component).includes(k)));
  const r = restoreOptionSchemas[component].safeParse(own);
  if (r.success) return r.data as RestoreOptions<C>;
  const issue = r.error.issues[0]!;
  const key = issue.path[0];
  throw new InputError(key === undefined ? `${component} options: ${issue.message}` : `option ${String(key)}=${shown(own[String(key)])}: ${issue.message}`);
}

/** Every option of a restore request is known to some component and valid for it; otherwise one line naming it. */
export function checkRestoreOptions(options: Record<string, string>): void {
  const known = (Object.keys(restoreOptionSchemas) as OptionComponent[]).flatMap(keysOf);
  for (const key of Object.keys(options)) {
    if (!takersOf(key).length) throw new InputError(`unknown option '${shown(key)}' (known: ${known.join(', ')})`);
  }
  for (const c of Object.keys(restoreOptionSchemas) as OptionComponent[]) parseRestoreOptions(c, options);
}
