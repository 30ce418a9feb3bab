// Prometheus metrics: one registry per process, served at /metrics.
import client from 'prom-client';

export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const httpDuration = new client.Histogram({
    name: 'custos_http_request_duration_seconds',
    help: 'HTTP request duration by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const ledgerTransfers = new client.Counter({
    name: 'custos_ledger_transfers_total',
    help: 'Transfers submitted to the ledger, by result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  return { registry, httpDuration, ledgerTransfers };
}

export type Metrics = ReturnType<typeof createMetrics>;
