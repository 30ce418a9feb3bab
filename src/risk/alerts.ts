// Alerts: stored once per monitor and subject, counted in /metrics, posted to the
// on-call robot (WeCom / DingTalk markdown) with the runbook line, and — where money
// could leak — a settlement hold placed in the same transaction as the alert.
import client from 'prom-client';
import { transact, type Database, type Tx } from '../platform/db.ts';
import * as repo from './risk.repo.ts';
import { RUNBOOK, type MonitorName } from './runbook.ts';

export interface Breach {
  monitor: MonitorName;
  subject: string;
  summary: string;
  details: Record<string, unknown>;
  /** Money that could leak: the merchant whose settlement is held, and how much. */
  hold?: { mchNo: string; amountFen: bigint };
}

export interface AlertDeps {
  db: Database;
  webhookUrl: string | null;
  webhookFormat: 'wecom' | 'dingtalk';
  webhookTimeoutMs: number;
  placeHold?: (tx: Tx, h: { ref: string; mchNo: string; amountFen: bigint; reason: 'risk'; note: string }) => Promise<unknown>;
  registry?: client.Registry;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
}

const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x));
const WEBHOOK_TEXT_MAX = 3500; // the robots cap a message at 4096 bytes

/** A scrape waits at most this long for the alert counts; then it shows the last ones read. */
const SCRAPE_READ_WAIT_MS = 500;

export function createAlerts(deps: AlertDeps) {
  if (deps.registry) {
    // /metrics must answer while the database pool is saturated (load shedding exempts it):
    // one read at a time, bounded wait, the last counts when the read is slow.
    let last: Array<{ monitor: string; n: number }> = [];
    let reading: Promise<void> | null = null;
    const read = () => {
      reading ??= repo.openAlertCounts(deps.db.kysely)
        .then((rows) => { last = rows; }, (error: unknown) => deps.log?.('reading open alert counts failed', { err: String(error) }))
        .finally(() => { reading = null; });
      return reading;
    };
    new client.Gauge({
      name: 'custos_risk_open_alerts',
      help: 'Open (unacknowledged) loss-prevention alerts, by monitor',
      labelNames: ['monitor'] as const,
      registers: [deps.registry],
      async collect() {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([read(), new Promise((resolve) => { timer = setTimeout(resolve, SCRAPE_READ_WAIT_MS); })]);
        clearTimeout(timer);
        this.reset();
        for (const m of Object.keys(RUNBOOK)) this.set({ monitor: m }, 0);
        for (const r of last) this.set({ monitor: r.monitor }, r.n);
      },
    });
  }

  /** Stores each breach (deduplicated), places its hold, and posts the new ones. */
  async function raise(breaches: Breach[]): Promise<repo.AlertRow[]> {
    const created: repo.AlertRow[] = [];
    let failed: unknown = null;
    for (const b of breaches) {
      try {
        await raiseOne(b, created);
      } catch (error) {
        failed ??= error; // the rest are still stored; the caller does not move its mark
      }
    }
    for (const row of created) await post(row);
    if (failed) throw failed;
    return created;
  }

  async function raiseOne(b: Breach, created: repo.AlertRow[]): Promise<void> {
    const holdRef = b.hold && b.hold.amountFen > 0n ? `risk:${b.monitor}:${b.subject}`.slice(0, 128) : null;
    const { row, created: isNew } = await transact(deps.db, async (tx) => {
      const res = await repo.upsertAlert(tx, {
        monitor: b.monitor, subject: b.subject, mch_no: b.hold?.mchNo ?? null, amount_fen: b.hold?.amountFen ?? null,
        summary: b.summary, details: json(b.details), hold_ref: holdRef,
      });
      if (res.created && holdRef && b.hold && deps.placeHold) {
        await deps.placeHold(tx, { ref: holdRef, mchNo: b.hold.mchNo, amountFen: b.hold.amountFen, reason: 'risk', note: `${b.monitor}: ${b.summary}`.slice(0, 200) });
      }
      return res;
    });
    if (isNew) created.push(row);
  }

  function text(row: repo.AlertRow): string {
    const runbook = RUNBOOK[row.monitor as MonitorName] ?? '见 docs/risk.md / see docs/risk.md';
    const lines = [
      `### Custos 资损告警 / loss-prevention alert: ${row.monitor}`,
      `> ${row.summary}`,
      `- 对象 / subject: ${row.subject}`,
      row.mch_no ? `- 商户 / merchant: ${row.mch_no}，已冻结结算 / settlement held: ${row.amount_fen} 分 (${row.hold_ref})` : '',
      `- 处置 / runbook: ${runbook}`,
      `- 告警编号 / alert id: ${row.id}（确认 / ack: POST /v1/admin/risk/alerts/${row.id}/ack）`,
    ].filter((l) => l !== '');
    return lines.join('\n').slice(0, WEBHOOK_TEXT_MAX);
  }

  async function post(row: repo.AlertRow): Promise<boolean> {
    if (!deps.webhookUrl) return false;
    const content = text(row);
    const body = deps.webhookFormat === 'dingtalk'
      ? { msgtype: 'markdown', markdown: { title: `Custos ${row.monitor}`, text: content } }
      : { msgtype: 'markdown', markdown: { content } };
    try {
      const res = await fetch(deps.webhookUrl, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
        signal: AbortSignal.timeout(deps.webhookTimeoutMs), redirect: 'error',
      });
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) throw new Error(`webhook answered ${res.status}`);
      await repo.markPosted(deps.db.kysely, row.id);
      return true;
    } catch (error) {
      deps.log?.('risk alert webhook failed', { alertId: row.id.toString(), err: String(error) });
      return false;
    }
  }

  return { raise, post, text };
}

export type Alerts = ReturnType<typeof createAlerts>;
