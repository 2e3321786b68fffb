import { z } from 'zod';
import type { ComponentName } from '../../common/manifest.js';
import type { Component } from './component.js';
import { alertmanager, alertmanagerSchema } from './alertmanager.js';
import { elasticsearch, elasticsearchSchema } from './elasticsearch/index.js';
import { grafana, grafanaSchema } from './grafana.js';
import { haproxy, haproxySchema } from './haproxy.js';
import { kibana, kibanaSchema } from './kibana.js';
import { postgresql, postgresqlSchema } from './postgresql.js';
import { prometheus, prometheusSchema } from './prometheus.js';
import { rabbitmq, rabbitmqSchema } from './rabbitmq.js';

/** Each component's settings and how to build it from them: the one place components are bound. */
const REGISTRY = {
  haproxy: { schema: haproxySchema, make: haproxy },
  elasticsearch: { schema: elasticsearchSchema, make: elasticsearch },
  kibana: { schema: kibanaSchema, make: kibana },
  prometheus: { schema: prometheusSchema, make: prometheus },
  alertmanager: { schema: alertmanagerSchema, make: alertmanager },
  grafana: { schema: grafanaSchema, make: grafana },
  postgresql: { schema: postgresqlSchema, make: postgresql },
  rabbitmq: { schema: rabbitmqSchema, make: rabbitmq },
} as const;

/**
 * The `components:` section of an agent config. A component listed here is served with these
 * settings; with `detect: true` (the default) every other component is looked for on the node with
 * LambdaStack's defaults, so an agent.yaml of node, listen and tls is enough on a LambdaStack node.
 */
export const componentsSchema = z
  .object({
    haproxy: haproxySchema.optional(),
    elasticsearch: elasticsearchSchema.optional(),
    kibana: kibanaSchema.optional(),
    prometheus: prometheusSchema.optional(),
    alertmanager: alertmanagerSchema.optional(),
    grafana: grafanaSchema.optional(),
    postgresql: postgresqlSchema.optional(),
    rabbitmq: rabbitmqSchema.optional(),
  })
  .strict();

export type ComponentsConfig = z.output<typeof componentsSchema>;

export interface NodeComponents {
  /** Every component this agent can serve: configured ones, and with detection all the others. */
  all: Map<ComponentName, Component>;
  /** The ones agent.yaml names: served whatever detection finds. */
  configured: Set<ComponentName>;
}

export function createComponents(cfg: ComponentsConfig, detect: boolean): NodeComponents {
  const all = new Map<ComponentName, Component>();
  const configured = new Set<ComponentName>();
  for (const name of Object.keys(REGISTRY) as ComponentName[]) {
    const { schema, make } = REGISTRY[name];
    const given = cfg[name];
    if (given !== undefined) configured.add(name);
    else if (!detect) continue;
    // Defaults are LambdaStack's; what differs by version or distro is detected when used.
    const parsed = given === undefined ? schema.safeParse({}) : { success: true as const, data: given };
    if (!parsed.success) continue; // a component that cannot run without settings is only served when configured
    all.set(name, (make as (c: typeof parsed.data) => Component)(parsed.data));
  }
  return { all, configured };
}
