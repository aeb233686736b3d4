// What the external tools (restic, pg_dump, pg_restore) cost in this process: how long each run
// took and how many bytes it moved. Process-local: it counts from the process's start, as
// Prometheus expects of a counter.
import type { Counter, Histogram } from 'prom-client';
import { defineMetric, processMetricsRegistry } from './registry';

export type Tool = 'restic' | 'pg_dump' | 'pg_restore';

let metrics: { duration: Histogram; bytes: Counter } | undefined;
function toolMetrics() {
  if (!metrics) {
    const registry = processMetricsRegistry();
    metrics = { duration: defineMetric(registry, 'toolDuration'), bytes: defineMetric(registry, 'toolBytes') };
  }
  return metrics;
}

/** Runs `fn` as one run of `tool`, observing how long it took and whether it failed. */
export async function timedTool<T>(tool: Tool, operation: string, fn: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  let outcome = 'error';
  try {
    const result = await fn();
    outcome = 'ok';
    return result;
  } finally {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    toolMetrics().duration.observe({ tool, operation, outcome }, seconds);
  }
}

/** Counts bytes a tool processed (read for a backup, written by a restore or a dump). */
export function countToolBytes(tool: Tool, operation: string, bytes: number): void {
  if (Number.isFinite(bytes) && bytes > 0) toolMetrics().bytes.inc({ tool, operation }, bytes);
}
