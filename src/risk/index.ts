// Loss prevention (资损防控): continuous monitors with alerts (stored, /metrics, robot
// webhook, automatic settlement holds) and risk rules on order creation. Other modules
// use only what is exported here; risk reads their data only through their `reads`.
import type client from 'prom-client';
import type { Database, Tx } from '../platform/db.ts';
import type { Clock } from '../platform/clock.ts';
import type { Jobs } from '../platform/jobs.ts';
import type { Ledger } from '../ledger/index.ts';
import type { PaymentCenter } from '../payment/index.ts';
import type { SettlementService } from '../settlement/index.ts';
import type { Fund } from '../fund/index.ts';
import { createAlerts, type Breach } from './alerts.ts';
import { MONITORS, MONITOR_DEFAULTS, type MonitorSettings } from './monitors.ts';
import { createRules } from './rules.ts';
import { riskRoutes } from './risk.routes.ts';
import * as repo from './risk.repo.ts';

export const RISK_QUEUE = 'risk-monitor';
const UNPOSTED_RETRY_MAX = 10;

export interface RiskOptions {
  db: Database;
  clock: Clock;
  ledger: Ledger;
  settlement: SettlementService;
  fund: Fund;
  guard: (req: never) => Promise<void>;
  registry?: client.Registry;
  webhookUrl?: string | null;
  webhookFormat?: 'wecom' | 'dingtalk';
  webhookTimeoutMs?: number;
  monitors?: Partial<MonitorSettings>;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

export type Risk = ReturnType<typeof createRisk>;

/** The payment center needs checkOrder and risk needs the payment center's reads: `attach(payment)` once it exists. */
export function createRisk(options: RiskOptions) {
  let payment: Pick<PaymentCenter, 'reads'> | null = null;
  const need = () => {
    if (!payment) throw new Error('risk: attach(payment) before use');
    return payment;
  };
  const placeHold = (tx: Tx, h: { ref: string; mchNo: string; amountFen: bigint; reason: 'risk'; note: string }) => options.settlement.holds.place(tx, h);
  const alerts = createAlerts({
    db: options.db, webhookUrl: options.webhookUrl ?? null, webhookFormat: options.webhookFormat ?? 'wecom',
    webhookTimeoutMs: options.webhookTimeoutMs ?? 5000, placeHold, registry: options.registry, log: options.log,
  });
  const rules = createRules({ db: options.db, clock: options.clock, payment: need, placeHold });
  const settings: MonitorSettings = { ...MONITOR_DEFAULTS, ...options.monitors };

  /** Runs every monitor once; returns the breaches found per monitor (a failing monitor is logged, the rest run). */
  async function runMonitors(): Promise<Record<string, number>> {
    const deps = { db: options.db, clock: options.clock, ledger: options.ledger, payment: need(), settlement: options.settlement, fund: options.fund, settings };
    const found: Record<string, number> = {};
    for (const [name, monitor] of Object.entries(MONITORS)) {
      let breaches: Breach[] = [];
      try {
        const result = await monitor(deps);
        breaches = result.breaches;
        await alerts.raise(breaches);
        await result.advance();
      } catch (error) {
        options.log?.('risk monitor failed', { monitor: name, err: String(error) });
      }
      found[name] = breaches.length;
    }
    for (const row of await repo.unpostedAlerts(options.db.kysely, UNPOSTED_RETRY_MAX)) await alerts.post(row);
    return found;
  }

  return {
    attach(p: Pick<PaymentCenter, 'reads'>) {
      payment = p;
    },
    checkOrder: rules.checkOrder,
    onPaid: rules.onPaid,
    runMonitors,
    alerts,
    routes: [riskRoutes({ db: options.db, guard: options.guard, runMonitors, rulesChanged: rules.invalidate })],
    /** Every minute, one process at a time (pg-boss cron). */
    async startJobs(jobs: Jobs, onError: (e: unknown) => void) {
      await jobs.work(RISK_QUEUE, async () => {
        await runMonitors().catch(onError);
      }, { batchSize: 1 });
      await jobs.schedule(RISK_QUEUE, '* * * * *');
    },
  };
}

export { RUNBOOK, type MonitorName } from './runbook.ts';
export type { Breach } from './alerts.ts';
