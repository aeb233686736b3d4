// prom-client metrics built from the catalog, each in the registry of the process that exports it.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRICS, type MetricDefinition } from './catalog';

type Catalog = typeof METRICS;
type Built<K extends keyof Catalog> = Catalog[K]['kind'] extends 'counter'
  ? Counter
  : Catalog[K]['kind'] extends 'gauge'
    ? Gauge
    : Histogram;

/** Creates the catalog's metric `key` in `registry`. */
export function defineMetric<K extends keyof Catalog>(registry: Registry, key: K): Built<K> {
  const def = METRICS[key] as MetricDefinition;
  const common = { name: def.name, help: def.help, labelNames: [...def.labels], registers: [registry] };
  if (def.kind === 'counter') return new Counter(common) as Built<K>;
  if (def.kind === 'gauge') return new Gauge(common) as Built<K>;
  return new Histogram({ ...common, buckets: [...(def.buckets ?? [])] }) as Built<K>;
}

/**
 * The process's own registry: prom-client's default process and Node.js metrics, and what the
 * process observes itself (tools run, HTTP requests). One per process, made on first use.
 */
let processRegistry: Registry | undefined;
export function processMetricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}
