// The monitors (资损监控): each reads what changed since its watermark (through the
// other modules' exported reads), returns the breaches it finds, and moves its mark.
// Marks on timestamps re-read an overlap window, so a transaction that committed late
// with an earlier timestamp is still seen; alerts are deduplicated, so re-reads are free.
import type { Database } from '../platform/db.ts';
import type { Clock } from '../platform/clock.ts';
import type { Ledger } from '../ledger/index.ts';
import type { PaymentCenter } from '../payment/index.ts';
import { TRANSFER_CODE } from '../payment/index.ts';
import type { SettlementService } from '../settlement/index.ts';
import type { Fund } from '../fund/index.ts';
import * as repo from './risk.repo.ts';
import type { Breach } from './alerts.ts';
import type { MonitorName } from './runbook.ts';

export interface MonitorSettings {
  /** Rows read per monitor per run. */
  batchMax: number;
  /** How far back a timestamp watermark re-reads. */
  overlapMs: number;
  /** A notification whose next attempt is this late is stuck. */
  notifyGraceS: number;
  /** A refund or merchant transfer still open after this long is stuck. */
  refundOpenMaxS: number;
  /** A settlement payout still open after this long is stuck. */
  payoutOpenMaxS: number;
}

export const MONITOR_DEFAULTS: MonitorSettings = { batchMax: 2000, overlapMs: 5 * 60_000, notifyGraceS: 600, refundOpenMaxS: 6 * 3600, payoutOpenMaxS: 24 * 3600 };

export interface MonitorDeps {
  db: Database;
  clock: Clock;
  ledger: Ledger;
  payment: Pick<PaymentCenter, 'reads'>;
  settlement: Pick<SettlementService, 'reads'>;
  fund: Pick<Fund, 'supervisionBalances'>;
  settings: MonitorSettings;
}

/** A monitor's findings, and the watermark move to make once they are stored (so a failure re-reads them). */
export interface MonitorResult { breaches: Breach[]; advance: () => Promise<void> }
type Monitor = (deps: MonitorDeps) => Promise<MonitorResult>;
const stay = async () => {};

const EPOCH = '1970-01-01T00:00:00.000Z';
const mchOfParty = (partyId: string) => /^mch:(.+):pending$/.exec(partyId)?.[1] ?? null;

/**
 * Reads rows changed since a time watermark (minus the overlap); when a full batch lies
 * entirely inside the overlap it reads again from the mark itself, so the mark always moves.
 */
async function readSince<T>(deps: MonitorDeps, monitor: MonitorName, read: (since: Date, limit: number) => Promise<T[]>, timeOf: (row: T) => Date) {
  const mark = new Date((await repo.getMark(deps.db.kysely, monitor)) ?? EPOCH);
  const limit = deps.settings.batchMax;
  let rows = await read(new Date(Math.max(0, mark.getTime() - deps.settings.overlapMs)), limit);
  const stalled = (r: T[]) => r.length >= limit && timeOf(r[r.length - 1]).getTime() <= mark.getTime();
  if (stalled(rows)) rows = await read(mark, limit);
  if (stalled(rows)) rows = await read(new Date(mark.getTime() + 1), limit); // more than a batch in one millisecond
  return {
    rows,
    advance: async () => {
      const last = rows.at(-1);
      if (last && timeOf(last).getTime() > mark.getTime()) await repo.setMark(deps.db.kysely, monitor, timeOf(last).toISOString());
    },
  };
}

/** Every successful order has exactly one payment posting of its amount. */
const paymentPosting: Monitor = async (deps) => {
  const mark = await readSince(deps, 'payment_posting', deps.payment.reads.paidOrdersSince, (o) => o.success_at);
  const orders = mark.rows;
  const postings = await deps.ledger.reads.transfersByRefs(orders.map((o) => o.pay_order_id), TRANSFER_CODE.payment);
  const byRef = new Map<string, typeof postings>();
  for (const p of postings) byRef.set(p.ref, [...(byRef.get(p.ref) ?? []), p]);
  const breaches: Breach[] = [];
  for (const o of orders) {
    const found = byRef.get(o.pay_order_id) ?? [];
    const postedFen = found.reduce((s, p) => s + p.amount, 0n);
    if (found.length === 1 && postedFen === o.amount) continue;
    const excess = postedFen > o.amount ? postedFen - o.amount : o.amount;
    breaches.push({
      monitor: 'payment_posting', subject: o.pay_order_id,
      summary: `订单 ${o.pay_order_id} 支付成功 ${o.amount} 分，入账 ${found.length} 笔共 ${postedFen} 分 / paid order has ${found.length} posting(s) totalling ${postedFen} fen, expected one of ${o.amount}`,
      details: { payOrderId: o.pay_order_id, mchNo: o.mch_no, amountFen: o.amount, postings: found.map((p) => ({ id: p.id, amountFen: p.amount })) },
      hold: { mchNo: o.mch_no, amountFen: excess },
    });
  }
  return { breaches, advance: mark.advance };
};

/** Refunds (done and in flight) never exceed what was paid. */
const refundOverrun: Monitor = async (deps) => {
  const mark = await readSince(deps, 'refund_overrun', deps.payment.reads.refundTotalsSince, (r) => r.last_updated_at);
  const rows = mark.rows;
  const breaches: Breach[] = [];
  for (const r of rows) {
    const refunding = r.refunded_fen + r.in_flight_fen;
    const worst = refunding > r.order_refund_amount ? refunding : r.order_refund_amount;
    if (worst <= r.amount) continue;
    breaches.push({
      monitor: 'refund_overrun', subject: r.pay_order_id,
      summary: `订单 ${r.pay_order_id} 实付 ${r.amount} 分，退款 ${worst} 分 / refunds of ${worst} fen exceed the ${r.amount} fen paid`,
      details: { payOrderId: r.pay_order_id, mchNo: r.mch_no, paidFen: r.amount, refundedFen: r.refunded_fen, inFlightFen: r.in_flight_fen, orderRefundAmountFen: r.order_refund_amount },
      hold: { mchNo: r.mch_no, amountFen: worst - r.amount },
    });
  }
  return { breaches, advance: mark.advance };
};

/** Each settlement payout pays exactly its settlement's net. */
const payoutSettlement: Monitor = async (deps) => {
  const mark = await readSince(deps, 'payout_settlement', deps.settlement.reads.payoutsWithSettlementsSince, (p) => p.updated_at);
  const rows = mark.rows;
  const breaches: Breach[] = [];
  for (const p of rows) {
    if (p.net_fen !== null && p.net_fen === p.payout_fen) continue;
    const mchNo = mchOfParty(p.party_id);
    const over = p.net_fen === null ? p.payout_fen : p.payout_fen - p.net_fen;
    breaches.push({
      monitor: 'payout_settlement', subject: p.payout_id,
      summary: p.net_fen === null
        ? `出款 ${p.payout_id} 没有对应结算单 ${p.settlement_id} / payout has no settlement`
        : `出款 ${p.payout_id} 金额 ${p.payout_fen} 分，结算单净额 ${p.net_fen} 分 / payout ${p.payout_fen} fen differs from the settlement's net ${p.net_fen} fen`,
      details: { payoutId: p.payout_id, settlementId: p.settlement_id, partyId: p.party_id, payoutFen: p.payout_fen, netFen: p.net_fen, payoutState: p.payout_state, settlementState: p.settlement_state },
      ...(mchNo && over > 0n ? { hold: { mchNo, amountFen: over } } : {}),
    });
  }
  return { breaches, advance: mark.advance };
};

/** Each fund's household principal and interest (with its yield and payables) equal its supervision account. */
const fundBalance: Monitor = async (deps) => {
  const breaches: Breach[] = [];
  for (const c of await deps.fund.supervisionBalances()) {
    const backed = c.bankFen + c.inTransitFen;
    if (c.owedFen === backed) continue;
    breaches.push({
      monitor: 'fund_balance', subject: `city:${c.city}`,
      summary: `${c.city} 维修资金分户账等合计 ${c.owedFen} 分，专户 ${c.bankFen} 分 + 在途 ${c.inTransitFen} 分 / households owed ${c.owedFen} fen, the supervision account holds ${c.bankFen} + ${c.inTransitFen} in transit`,
      details: { city: c.city, owedFen: c.owedFen, bankFen: c.bankFen, inTransitFen: c.inTransitFen, differenceFen: c.owedFen - backed, truncated: c.truncated },
    });
  }
  return { breaches, advance: stay };
};

/** The ledger balances, and every account touched since the mark agrees with its transfers. */
const ledgerInvariant: Monitor = async (deps) => {
  const raw = await repo.getMark(deps.db.kysely, 'ledger_invariant');
  const report = await deps.ledger.verifySince(BigInt(raw ?? '0'), deps.settings.batchMax * 4);
  const breaches: Breach[] = report.unbalancedLedgers.map((l) => ({
    monitor: 'ledger_invariant' as const, subject: `ledger:${l}`,
    summary: `账本 ${l} 借贷不平 / ledger ${l} debits do not equal credits`, details: { ledger: l },
  }));
  for (const a of report.accountsMismatched) {
    breaches.push({
      monitor: 'ledger_invariant', subject: `account:${a.id}`,
      summary: `账户 ${a.id} 余额与流水不符 / account ${a.id} balances differ from the sum of its transfers`,
      details: { ...a },
    });
  }
  const lastTs = report.lastTs;
  return { breaches, advance: async () => { if (lastTs !== null) await repo.setMark(deps.db.kysely, 'ledger_invariant', lastTs.toString()); } };
};

/** No notification, refund or payout is stuck beyond its schedule. */
const stuckWork: Monitor = async (deps) => {
  const s = deps.settings;
  const now = new Date(Number(deps.clock.nowNs() / 1_000_000n));
  const items = await deps.payment.reads.stuckItems(now, s.notifyGraceS, s.refundOpenMaxS, s.batchMax);
  const payouts = await deps.settlement.reads.stuckPayouts(now, s.payoutOpenMaxS, s.batchMax);
  const breaches: Breach[] = items.map((i) => ({
    monitor: 'stuck_work' as const, subject: `${i.kind}:${i.id}`,
    summary: `${i.kind} ${i.id}（商户 ${i.mch_no}）自 ${i.since.toISOString()} 起未完成 / overdue since ${i.since.toISOString()}`,
    details: { kind: i.kind, id: i.id, mchNo: i.mch_no, amountFen: i.amount, since: i.since.toISOString() },
  }));
  for (const p of payouts) {
    breaches.push({
      monitor: 'stuck_work', subject: `payout:${p.payout_id}`,
      summary: `结算出款 ${p.payout_id}（${p.state}）自 ${p.created_at.toISOString()} 起未完成 / settlement payout overdue`,
      details: { kind: 'payout', id: p.payout_id, partyId: p.party_id, amountFen: p.amount_fen, state: p.state, since: p.created_at.toISOString() },
    });
  }
  return { breaches, advance: stay };
};

export const MONITORS: Record<Exclude<MonitorName, 'rule_hold'>, Monitor> = {
  payment_posting: paymentPosting,
  refund_overrun: refundOverrun,
  payout_settlement: payoutSettlement,
  fund_balance: fundBalance,
  ledger_invariant: ledgerInvariant,
  stuck_work: stuckWork,
};
