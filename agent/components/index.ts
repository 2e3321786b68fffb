import { z } from 'zod';
import type { ComponentName } from '../../common/manifest.js';
import type { Component } from './component.js';
import { alertmanager, alertmanagerSchema } from './alertmanager.js';
import { elasticsearch, elasticsearchSchema } from './elasticsearch.js';
import { grafana, grafanaSchema } from './grafana.js';
import { haproxy, haproxySchema } from './haproxy.js';
import { kibana, kibanaSchema } from './kibana.js';
import { postgresql, postgresqlSchema } from './postgresql.js';
import { prometheus, prometheusSchema } from './prometheus.js';
import { rabbitmq, rabbitmqSchema } from './rabbitmq.js';

/** The `components:` section of an agent config: a component runs on a node when its key is present. */
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

export function createComponents(cfg: ComponentsConfig): Map<ComponentName, Component> {
  const all: [ComponentName, (() => Component) | undefined][] = [
    ['haproxy', cfg.haproxy && (() => haproxy(cfg.haproxy!))],
    ['elasticsearch', cfg.elasticsearch && (() => elasticsearch(cfg.elasticsearch!))],
    ['kibana', cfg.kibana && (() => kibana(cfg.kibana!))],
    ['prometheus', cfg.prometheus && (() => prometheus(cfg.prometheus!))],
    ['alertmanager', cfg.alertmanager && (() => alertmanager(cfg.alertmanager!))],
    ['grafana', cfg.grafana && (() => grafana(cfg.grafana!))],
    ['postgresql', cfg.postgresql && (() => postgresql(cfg.postgresql!))],
    ['rabbitmq', cfg.rabbitmq && (() => rabbitmq(cfg.rabbitmq!))],
  ];
  const out = new Map<ComponentName, Component>();
  for (const [name, make] of all) if (make) out.set(name, make());
  return out;
}
