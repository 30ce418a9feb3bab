// Clearing and settlement (清结算). At payment success (inside the payment's own
// transaction) the fees are computed once, stored and posted, utility collections
// (代收水电) move to their own account, line-item orders are split, and every credit
// gets the day it becomes available. At refund success fees are returned by the rule
// and splits clawed back in proportion. A settlement run for a date builds one batch:
// per party one settlement (gross, fees, refunds, holds, net) from its available
// entries, with the payout held on the ledger in the same transaction; payouts go to
// the bank channel with the payout id as the request id, once.
import { performance } from 'node:perf_hooks';
import { transact, type Database, type Tx } from '../platform/db.ts';
import { assert } from '../platform/assert.ts';
import { allocate } from '../platform/money.ts';
import { cstDate, isValidDate } from '../platform/time.ts';
import type { Ledger } from '../ledger/index.ts';
import { ChannelUnavailable, type ChannelAdapter, type ChannelAsyncState } from '../channel/contract.ts';
import { accountIds, type PayOrderRow } from '../payment/index.ts';
import type { RefundRow } from '../payment/index.ts';
import { computeFee, refundedFee, clawbackShare, parseFeeRule, feeRuleJson, FeeRuleInvalid, NO_FEE, type FeeRule } from './fee.ts';
import { createCalendar, SETTLEMENT_CYCLES, type Calendar, type DayKind, type SettlementCycle } from './calendar.ts';
import { createSettlePostings, settleAccountIds, SETTLE_TRANSFER_CODE, type Posting } from './postings.ts';
import { settleErrors } from './settlement.errors.ts';
import * as repo from './settlement.repo.ts';
import { forEachBounded } from '../platform/check-schedule.ts';

export const SETTLE_QUEUE = 'settlement-daily';
export const CATEGORIES = ['ordinary', 'utility', 'repair'] as const;
export type Category = (typeof CATEGORIES)[number];

/** Parties per chunk of a settlement run: each chunk is one transaction. */
const CHUNK_PARTIES = 5000;
const CHUNKS_MAX = 10_000;
const LINES_MAX = 20;
const DISPATCH_CONCURRENCY = 8;
const STATEMENT_ROWS_MAX = 100_000;
const BUREAU_PATTERN = /^[a-z0-9_-]{1,32}$/;

export interface SettlementOptions {
  db: Database;
  ledger: Ledger;
  /** The bank channels payouts go through, by ifCode; the first is the default. */
  adapters: () => ChannelAdapter[];
  publicUrl: string;
  now?: () => Date;
  log?: (msg: string, extra?: Record<string, unknown>) => void;
  /** Time spent per stage of a run (benchmarks). */
  trace?: (stage: string, ms: number) => void;
}

/** What settlement reads from an order's extParam: {"custos":{"category":…}}. */
export interface OrderIntent {
  category: Category;
  bureau: string | null;
  lines: Array<{ kind: string; amountFen: bigint; payee: string | null }>;
}

export interface PartyInput {
  bureau?: string | null; name?: string; cycle?: string; minPayoutFen?: string | number; confirm?: string;
  ifCode?: string; accountNo?: string; accountName?: string | null; bankName?: string | null;
}

export interface RunResult {
  batchId: string; settleDate: string; state: string; settlements: number; netFen: bigint; createdNow: number; short: number;
  payouts: { sent: number; failed: number; unavailable: number } | null;
}

export type SettlementService = ReturnType<typeof createSettlementService>;

export function createSettlementService(options: SettlementOptions) {
  const { db, ledger } = options;
  const now = options.now ?? (() => new Date());
  const postings = createSettlePostings(ledger);
  let calendar: Calendar = createCalendar();
  const adapters = () => options.adapters();
  const adapterFor = (ifCode: string) => adapters().find((a) => a.ifCode === ifCode);
  const defaultIfCode = () => adapters()[0]?.ifCode ?? 'sandbox';

  async function loadCalendar(): Promise<void> {
    const rows = await repo.listOverrides(db.kysely);
    calendar = createCalendar(new Map(rows.map((r) => [r.day, r.kind])));
  }

  // --- what an order is -------------------------------------------------------------

  /** Reads the settlement intent from an order's extParam; anything else is an ordinary order. */
  function intentOf(order: Pick<PayOrderRow, 'ext_param' | 'amount'>): OrderIntent {
    const ordinary: OrderIntent = { category: 'ordinary', bureau: null, lines: [] };
    if (!order.ext_param || !order.ext_param.startsWith('{')) return ordinary;
    let custos: Record<string, unknown>;
    try {
      const parsed = JSON.parse(order.ext_param) as Record<string, unknown>;
      if (typeof parsed.custos !== 'object' || parsed.custos === null) return ordinary;
      custos = parsed.custos as Record<string, unknown>;
    } catch {
      return ordinary;
    }
    if (custos.category === 'utility' && typeof custos.bureau === 'string' && BUREAU_PATTERN.test(custos.bureau)) {
      return { category: 'utility', bureau: custos.bureau, lines: [] };
    }
    if (custos.category === 'repair') {
      const lines: OrderIntent['lines'] = [];
      const raw = Array.isArray(custos.lines) ? custos.lines.slice(0, LINES_MAX) : [];
      for (const l of raw as Array<Record<string, unknown>>) {
        const fen = typeof l?.amountFen === 'string' && /^[0-9]{1,15}$/.test(l.amountFen) ? BigInt(l.amountFen)
          : typeof l?.amountFen === 'number' && Number.isSafeInteger(l.amountFen) && l.amountFen >= 0 ? BigInt(l.amountFen) : null;
        if (fen === null) return { category: 'repair', bureau: null, lines: [] };
        lines.push({ kind: typeof l.kind === 'string' ? l.kind.slice(0, 32) : 'line', amountFen: fen, payee: typeof l.payee === 'string' ? l.payee : null });
      }
      // Lines that do not add up to the order are ignored: the whole order is the merchant's.
      const sum = lines.reduce((s, l) => s + l.amountFen, 0n);
      return { category: 'repair', bureau: null, lines: sum === order.amount && sum > 0n ? lines : [] };
    }
    return ordinary;
  }

  async function feeRuleFor(tx: Tx, order: PayOrderRow, category: Category): Promise<FeeRule> {
    const [found] = await repo.findFeeRules(tx, order.mch_no, order.app_id, order.way_code, category);
    return found ? parseFeeRule(JSON.parse(found.rule)) : NO_FEE;
  }

  async function costRuleFor(tx: Tx, ifCode: string): Promise<FeeRule> {
    const stored = await repo.findChannelCostRule(tx, ifCode);
    return stored ? parseFeeRule(JSON.parse(stored)) : NO_FEE;
  }

  function availableOn(paidAt: Date, cycle: string): string | null {
    return calendar.availableOn(paidAt, cycle as SettlementCycle);
  }

  async function merchantParty(tx: Tx, mchNo: string): Promise<repo.PartyRow> {
    const id = accountIds.merchantPending(mchNo);
    return (await repo.findParty(tx, id)) ?? repo.ensureParty(tx, {
      party_id: id, kind: 'merchant', mch_no: mchNo, bureau: null, name: mchNo, cycle: 'T1', if_code: defaultIfCode(), account_no: '',
    });
  }

  async function utilityParty(tx: Tx, mchNo: string, bureau: string): Promise<repo.PartyRow> {
    const id = settleAccountIds.utility(mchNo, bureau);
    return (await repo.findParty(tx, id)) ?? repo.ensureParty(tx, {
      party_id: id, kind: 'utility', mch_no: mchNo, bureau, name: `${bureau} 代收 / collections for ${bureau}`, cycle: 'monthly', if_code: defaultIfCode(), account_no: '',
    });
  }

  // --- payment success and refund success (inside the payment center's transactions) ---

  /** Fees, collections, splits and available_on for a paid order. Idempotent per order. */
  async function onPaid(tx: Tx, order: PayOrderRow): Promise<void> {
    if (await repo.findOrderFee(tx, order.pay_order_id)) return;
    const paidAt = order.success_at ?? now();
    const ifCode = order.if_code as string;
    const intent = intentOf(order);
    const rule = await feeRuleFor(tx, order, intent.category);
    const costRule = await costRuleFor(tx, ifCode);
    const gross = order.amount;
    const fee = computeFee(rule, gross);
    const cost = computeFee(costRule, gross);
    const net = gross - fee;
    assert(fee >= 0n && net >= 0n, 'fee within the paid amount');
    const merchant = await merchantParty(tx, order.mch_no);
    const on = availableOn(paidAt, merchant.cycle);
    const id = order.pay_order_id;
    const entries: repo.NewEntry[] = [
      { party_id: merchant.party_id, kind: 'payment', ref: id, amount_fen: gross, available_on: on },
      { party_id: merchant.party_id, kind: 'fee', ref: id, amount_fen: -fee, available_on: on },
    ];
    const moves: Posting[] = [
      { id: `fee:${id}`, debit: merchant.party_id, credit: settleAccountIds.feeIncome, amountFen: fee, code: SETTLE_TRANSFER_CODE.fee, ref: id },
      { id: `cost:${id}`, debit: settleAccountIds.channelCost, credit: accountIds.channelClearing(ifCode), amountFen: cost, code: SETTLE_TRANSFER_CODE.channel_cost, ref: id },
    ];
    let utilityPartyId: string | null = null;
    let utilityFen = 0n;
    const splits: Array<{ party: string; kind: string; fen: string }> = [];
    if (intent.category === 'utility' && intent.bureau) {
      // The whole collection (less any fee) is the bureau's, never the merchant's income.
      const utility = await utilityParty(tx, order.mch_no, intent.bureau);
      utilityPartyId = utility.party_id;
      utilityFen = net;
      entries.push(
        { party_id: merchant.party_id, kind: 'utility_out', ref: id, amount_fen: -net, available_on: on },
        { party_id: utility.party_id, kind: 'utility_in', ref: id, amount_fen: net, available_on: availableOn(paidAt, utility.cycle) },
      );
      moves.push({ id: `util:${id}`, debit: merchant.party_id, credit: utility.party_id, amountFen: net, code: SETTLE_TRANSFER_CODE.utility, ref: id });
    } else if (intent.category === 'repair' && intent.lines.length > 0) {
      // Largest remainder over the line amounts: the parts sum exactly to the net.
      const shares = allocate(net, intent.lines.map((l) => l.amountFen));
      const byPayee = new Map<string, bigint>();
      for (let i = 0; i < intent.lines.length; i += 1) {
        const payee = intent.lines[i].payee;
        const other = payee !== null && payee !== order.mch_no && (await repo.merchantExists(tx, payee));
        if (other) byPayee.set(payee, (byPayee.get(payee) ?? 0n) + shares[i]);
        splits.push({ party: other ? accountIds.merchantPending(payee) : merchant.party_id, kind: intent.lines[i].kind, fen: shares[i].toString() });
      }
      for (const [payee, fen] of [...byPayee].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (fen === 0n) continue;
        const party = await merchantParty(tx, payee);
        entries.push(
          { party_id: merchant.party_id, kind: 'split_out', ref: `${id}:${payee}`, amount_fen: -fen, available_on: on },
          { party_id: party.party_id, kind: 'split_in', ref: id, amount_fen: fen, available_on: availableOn(paidAt, party.cycle) },
        );
        moves.push({ id: `split:${id}:${payee}`, debit: merchant.party_id, credit: party.party_id, amountFen: fen, code: SETTLE_TRANSFER_CODE.split, ref: id });
      }
    }
    await repo.insertOrderFee(tx, {
      pay_order_id: id, mch_no: order.mch_no, if_code: ifCode, category: intent.category, gross_fen: gross, fee_fen: fee, channel_cost_fen: cost,
      fee_rule: feeRuleJson(rule), cost_rule: feeRuleJson(costRule), utility_party: utilityPartyId, utility_fen: utilityFen,
      splits: splits.length > 0 ? JSON.stringify(splits) : null, paid_at: paidAt,
    });
    await repo.insertEntries(tx, entries.filter((e) => e.amount_fen !== 0n || e.kind === 'payment'));
    await postings.post(tx, moves);
  }

  /** A refund succeeded: deduct it, return fees by the rule, claw back collections and splits. */
  async function onRefunded(tx: Tx, refund: RefundRow): Promise<void> {
    const at = refund.success_at ?? now();
    const day = cstDate(at);
    const merchant = await merchantParty(tx, refund.mch_no);
    const rid = refund.refund_order_id;
    const entries: repo.NewEntry[] = [{ party_id: merchant.party_id, kind: 'refund', ref: rid, amount_fen: -refund.refund_amount, available_on: day }];
    const f = await repo.findOrderFee(tx, refund.pay_order_id, true);
    if (f) {
      const before = f.refunded_fen;
      const r = refund.refund_amount;
      if (before + r <= f.gross_fen) {
        const feeBack = refundedFee(parseFeeRule(JSON.parse(f.fee_rule)), f.fee_fen, f.gross_fen, before, r);
        const costBack = refundedFee(parseFeeRule(JSON.parse(f.cost_rule)), f.channel_cost_fen, f.gross_fen, before, r);
        await postings.post(tx, [
          { id: `feeret:${rid}`, debit: settleAccountIds.feeIncome, credit: merchant.party_id, amountFen: feeBack, code: SETTLE_TRANSFER_CODE.fee_return, ref: rid },
          { id: `costret:${rid}`, debit: accountIds.channelClearing(f.if_code), credit: settleAccountIds.channelCost, amountFen: costBack, code: SETTLE_TRANSFER_CODE.cost_return, ref: rid },
        ]);
        if (feeBack > 0n) entries.push({ party_id: merchant.party_id, kind: 'fee_return', ref: rid, amount_fen: feeBack, available_on: day });
        // What went to the bureau or a contractor comes back in proportion — when it is still there.
        const parts: Array<{ party: string; fen: bigint }> = [];
        if (f.utility_party && f.utility_fen > 0n) parts.push({ party: f.utility_party, fen: f.utility_fen });
        for (const s of f.splits ? (JSON.parse(f.splits) as Array<{ party: string; fen: string }>) : []) {
          if (s.party !== merchant.party_id) parts.push({ party: s.party, fen: BigInt(s.fen) });
        }
        for (const p of parts) {
          const back = clawbackShare(p.fen, f.gross_fen, before, r);
          const ok = await postings.tryPost(tx, { id: `claw:${rid}:${p.party}`, debit: p.party, credit: merchant.party_id, amountFen: back, code: SETTLE_TRANSFER_CODE.clawback, ref: rid });
          if (ok && back > 0n) {
            entries.push({ party_id: p.party, kind: 'clawback_out', ref: rid, amount_fen: -back, available_on: day }, { party_id: merchant.party_id, kind: 'clawback_in', ref: `${rid}:${p.party}`, amount_fen: back, available_on: day });
          } else if (!ok) options.log?.('clawback refused: the party was already paid; the merchant bears the refund', { refundOrderId: rid, party: p.party });
        }
        await repo.updateOrderFeeRefund(tx, f.pay_order_id, before + r, f.fee_returned_fen + feeBack, f.cost_returned_fen + costBack);
      }
    }
    await repo.insertEntries(tx, entries);
  }

  // --- holds (reconciliation and risk) ------------------------------------------------

  const holds = {
    /** Keeps `amountFen` of a merchant's balance out of settlement until released. Idempotent by ref. */
    async place(tx: Tx, h: { ref: string; mchNo: string; amountFen: bigint; reason: 'recon' | 'risk'; note?: string | null }): Promise<repo.HoldRow> {
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(h.ref)) throw settleErrors.invalidParam('hold ref: 1–128 letters, digits, _ . : -');
      if (h.amountFen <= 0n) throw settleErrors.invalidParam('冻结金额必须大于 0 / amountFen must be positive');
      const party = accountIds.merchantPending(h.mchNo);
      const inserted = await repo.insertHold(tx, { ref: h.ref, party_id: party, mch_no: h.mchNo, amount_fen: h.amountFen, reason: h.reason, note: h.note ?? null });
      const row = (await repo.findHold(tx, h.ref)) as repo.HoldRow;
      if (!inserted && (row.party_id !== party || row.amount_fen !== h.amountFen || row.reason !== h.reason)) {
        throw settleErrors.holdConflict(`冻结编号已用于其他冻结 / hold ${h.ref} exists with other fields`);
      }
      return row;
    },
    /** Releases a hold (idempotent: releasing twice, or an unknown ref, changes nothing). */
    async release(tx: Tx, ref: string): Promise<boolean> {
      return repo.releaseHold(tx, ref);
    },
  };

  // --- configuration --------------------------------------------------------------------

  async function requireMerchant(mchNo: string): Promise<void> {
    if (!(await repo.merchantExists(db.kysely, mchNo))) throw settleErrors.merchantNotFound(`商户不存在 / no merchant ${mchNo}`);
  }

  function ruleFrom(input: unknown): FeeRule {
    try {
      return parseFeeRule(input);
    } catch (error) {
      if (error instanceof FeeRuleInvalid) throw settleErrors.feeRuleInvalid(`计费规则无效 / invalid fee rule: ${error.message}`);
      throw error;
    }
  }

  async function setFeeRule(mchNo: string, input: { appId?: string; wayCode?: string; category?: string; rule: unknown }) {
    const rule = ruleFrom(input.rule);
    const category = input.category ?? '*';
    if (category !== '*' && !(CATEGORIES as readonly string[]).includes(category)) throw settleErrors.invalidParam(`category must be *, ${CATEGORIES.join(', ')}`);
    await requireMerchant(mchNo);
    await repo.upsertFeeRule(db.kysely, { mch_no: mchNo, app_id: input.appId ?? '*', way_code: input.wayCode ?? '*', category, rule: feeRuleJson(rule) });
    return { mchNo, appId: input.appId ?? '*', wayCode: input.wayCode ?? '*', category, rule: JSON.parse(feeRuleJson(rule)) };
  }

  async function setChannelCost(ifCode: string, input: unknown) {
    const rule = ruleFrom(input);
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(ifCode)) throw settleErrors.invalidParam('ifCode: 1–32 letters, digits, _ -');
    await repo.upsertChannelCostRule(db.kysely, ifCode, feeRuleJson(rule));
    return { ifCode, rule: JSON.parse(feeRuleJson(rule)) };
  }

  /** Settles a merchant's own party, or (with bureau) its collections for a utility. */
  async function configureParty(mchNo: string, input: PartyInput): Promise<repo.PartyRow> {
    const bureau = input.bureau ?? null;
    if (bureau !== null && !BUREAU_PATTERN.test(bureau)) throw settleErrors.invalidParam('bureau: 1–32 of a-z 0-9 _ - (e.g. "power", "water")');
    if (input.cycle !== undefined && !SETTLEMENT_CYCLES.includes(input.cycle as SettlementCycle)) throw settleErrors.invalidParam(`cycle must be one of ${SETTLEMENT_CYCLES.join(', ')}`);
    if (input.confirm !== undefined && input.confirm !== 'auto' && input.confirm !== 'operator') throw settleErrors.invalidParam('confirm must be auto or operator');
    let minPayout: bigint | null = null;
    if (input.minPayoutFen !== undefined) {
      const text = String(input.minPayoutFen);
      if (!/^[0-9]{1,15}$/.test(text) || BigInt(text) < 1n) throw settleErrors.invalidParam('minPayoutFen must be a whole number of fen ≥ 1');
      minPayout = BigInt(text);
    }
    if (input.ifCode !== undefined && !adapterFor(input.ifCode)) throw settleErrors.invalidParam(`未知出款渠道 / unknown ifCode ${input.ifCode}`);
    if (input.accountNo !== undefined && !/^[0-9A-Za-z-]{1,40}$/.test(input.accountNo)) throw settleErrors.invalidParam('accountNo: 1–40 digits or letters');
    await requireMerchant(mchNo);
    return transact(db, async (tx) => {
      const current = bureau ? await utilityParty(tx, mchNo, bureau) : await merchantParty(tx, mchNo);
      const next: repo.PartyRow = {
        ...current, name: input.name?.slice(0, 100) ?? current.name, cycle: input.cycle ?? current.cycle, min_payout_fen: minPayout ?? current.min_payout_fen,
        confirm: (input.confirm as 'auto' | 'operator' | undefined) ?? current.confirm, if_code: input.ifCode ?? current.if_code,
        account_no: input.accountNo ?? current.account_no, account_name: input.accountName === undefined ? current.account_name : input.accountName,
        bank_name: input.bankName === undefined ? current.bank_name : input.bankName,
      };
      await repo.upsertParty(tx, next);
      return (await repo.findParty(tx, next.party_id)) as repo.PartyRow;
    });
  }

  async function setCalendarOverrides(days: Array<{ day: string; kind: string; note: string }>) {
    if (days.length === 0 || days.length > 400) throw settleErrors.invalidParam('days: 1 to 400 rows');
    for (const d of days) {
      if (!isValidDate(d.day)) throw settleErrors.invalidParam(`not a date: ${d.day} (YYYY-MM-DD)`);
      if (d.kind !== 'workday' && d.kind !== 'holiday') throw settleErrors.invalidParam('kind must be workday or holiday');
      if (typeof d.note !== 'string' || d.note.trim() === '') throw settleErrors.invalidParam('note is required: say where the day comes from (the notice, or who entered it)');
    }
    await repo.upsertOverrides(db.kysely, days);
    await loadCalendar();
  }

  async function releaseManual(partyId: string, day: string): Promise<number> {
    if (!isValidDate(day)) throw settleErrors.dateInvalid(`日期格式应为 YYYY-MM-DD / date must be YYYY-MM-DD, got ${day}`);
    if (!(await repo.findParty(db.kysely, partyId))) throw settleErrors.partyNotFound(`no settlement party ${partyId}`);
    return repo.releaseManual(db.kysely, partyId, day);
  }

  // --- the run -------------------------------------------------------------------------

  function checkDate(day: string): void {
    if (!isValidDate(day)) throw settleErrors.dateInvalid(`日期格式应为 YYYY-MM-DD / date must be YYYY-MM-DD, got ${JSON.stringify(day)}`);
    const today = cstDate(now());
    if (day > today) throw settleErrors.dateFuture(`不能结算未来日期 / cannot settle ${day}: it is after today (${today}, Beijing time)`);
  }

  /**
   * Builds (or resumes) the batch of a date, chunk by chunk: each chunk is one
   * transaction that creates the settlements, binds their entries, and holds their
   * payouts on the ledger. Running it again, or at the same time, pays nothing twice.
   */
  async function run(day: string): Promise<RunResult> {
    checkDate(day);
    const batchId = `B${day.replaceAll('-', '')}`;
    const batch = await transact(db, async (tx) => {
      await repo.lockRun(tx);
      return repo.ensureBatch(tx, batchId, day);
    });
    let t0 = performance.now();
    const bounds = await repo.partyChunkBounds(db.kysely, day, batch.max_entry_id, CHUNK_PARTIES);
    options.trace?.('chunk_bounds', performance.now() - t0);
    assert(bounds.length <= CHUNKS_MAX, 'chunks within limit');
    let createdNow = 0;
    let short = 0;
    await ensurePayoutAccounts();
    for (let i = 0; i < bounds.length; i += 1) {
      const lo = bounds[i];
      const hi = i + 1 < bounds.length ? bounds[i + 1] : null;
      const out = await transact(db, async (tx) => {
        await repo.lockRun(tx);
        let t = performance.now();
        const created = await repo.settleChunk(tx, { batchId: batch.batch_id, day, maxEntryId: batch.max_entry_id, lo, hi, idPrefix: `S${day.replaceAll('-', '')}` });
        options.trace?.('settle_chunk', performance.now() - t);
        t = performance.now();
        const paid = await createPayouts(tx, { batchId: batch.batch_id, lo, hi }, day);
        options.trace?.('payouts', performance.now() - t);
        return { created, short: paid.short };
      });
      createdNow += out.created;
      short += out.short;
    }
    t0 = performance.now();
    const built = await repo.finishBatch(db.kysely, batch.batch_id);
    options.trace?.('finish', performance.now() - t0);
    return { batchId: built.batch_id, settleDate: built.settle_date, state: built.state, settlements: built.settlements, netFen: built.net_fen, createdNow, short, payouts: null };
  }

  async function ensurePayoutAccounts(): Promise<void> {
    await transact(db, (tx) => postings.ensureAccounts(tx, adapters().map((a) => accountIds.channelClearing(a.ifCode))));
  }

  /** Payouts (rows, ledger holds, entries) for the auto settlements of a chunk that have none yet. */
  async function createPayouts(tx: Tx, which: repo.SettlementsToPay, day: string): Promise<{ created: number; short: number }> {
    let t = performance.now();
    const due = await repo.settlementsToPay(tx, which);
    options.trace?.('payouts.read', performance.now() - t);
    if (due.length === 0) return { created: 0, short: 0 };
    const payouts = due.map((s) => ({ payoutId: `P${s.settlement_id.slice(1)}`, partyId: s.party_id, ifCode: s.if_code, amountFen: s.net_fen }));
    t = performance.now();
    const results = await postings.holdPayouts(tx, payouts);
    options.trace?.('payouts.ledger', performance.now() - t);
    const shortIds: string[] = [];
    const ok: typeof due = [];
    results.forEach((r, i) => {
      if (r === 'ok' || r === 'exists') ok.push(due[i]);
      else {
        assert(r === 'exceeds_credits', `payout hold ${payouts[i].payoutId}: ${r}`);
        shortIds.push(due[i].settlement_id);
      }
    });
    await repo.markShort(tx, shortIds);
    t = performance.now();
    const created = await repo.insertPayoutsFor(tx, which, day);
    options.trace?.('payouts.rows', performance.now() - t);
    assert(created === ok.length, 'a payout row for every payout held');
    return { created: ok.length, short: shortIds.length };
  }

  /** An operator confirms a settlement that waits for it: its payout is held and queued. */
  async function confirm(settlementId: string): Promise<repo.PayoutRow> {
    return transact(db, async (tx) => {
      const s = await repo.findSettlement(tx, settlementId, true);
      if (!s) throw settleErrors.settlementNotFound(`结算单不存在 / no settlement ${settlementId}`);
      const existing = await repo.findPayoutBySettlement(tx, settlementId);
      if (existing) return existing;
      if (s.state !== 'awaiting_confirm') throw settleErrors.settlementState(`结算单状态为 ${s.state}，无需确认 / settlement is ${s.state}, not awaiting confirmation`);
      const party = (await repo.findParty(tx, s.party_id)) as repo.PartyRow;
      if (party.account_no === '') throw settleErrors.accountMissing(`未设置收款账户 / ${s.party_id} has no bank account: set accountNo with PUT /v1/admin/settlement/merchants/${party.mch_no}/party first`);
      await repo.setSettlementState(tx, settlementId, 'paying');
      await postings.ensureAccounts(tx, adapters().map((a) => accountIds.channelClearing(a.ifCode)));
      const made = await createPayouts(tx, { settlementId }, cstDate(now()));
      if (made.short > 0) throw settleErrors.balanceInsufficient('账户余额不足以出款（退款或冻结已占用）/ the balance no longer covers this payout');
      return (await repo.findPayoutBySettlement(tx, settlementId)) as repo.PayoutRow;
    });
  }

  // --- payouts to the bank channel -------------------------------------------------------

  /** Sends created payouts (never twice: the payout id is the channel's request id). */
  async function dispatchPayouts(limit = 1000): Promise<{ sent: number; failed: number; unavailable: number }> {
    const open = await repo.openPayouts(db.kysely, ['created'], limit);
    const counts = { sent: 0, failed: 0, unavailable: 0 };
    for (let i = 0; i < open.length; i += DISPATCH_CONCURRENCY) {
      await Promise.all(open.slice(i, i + DISPATCH_CONCURRENCY).map(async (p) => {
        const after = await send(p);
        if (after === 'unavailable') counts.unavailable += 1;
        else if (after === 'failed') counts.failed += 1;
        else counts.sent += 1;
      }));
    }
    return counts;
  }

  async function send(p: repo.PayoutRow): Promise<'sent' | 'failed' | 'unavailable' | 'success'> {
    const adapter = adapterFor(p.if_code);
    if (!adapter) return 'unavailable';
    let state: ChannelAsyncState;
    try {
      state = await adapter.transfer({
        transferId: p.payout_id, amountFen: p.amount_fen, entryType: 'BANK_CARD', accountNo: p.account_no, accountName: p.account_name,
        bankName: p.bank_name, desc: `结算 settlement ${p.settlement_id}`, notifyUrl: `${options.publicUrl}/api/settlement/notify/${p.if_code}`,
      });
    } catch (error) {
      if (!(error instanceof ChannelUnavailable)) throw error;
      await repo.updatePayout(db.kysely, p.payout_id, { attempts: p.attempts + 1 });
      return 'unavailable';
    }
    const after = await applyPayoutState(p.payout_id, state, true);
    return after.state === 'failed' ? 'failed' : after.state === 'success' ? 'success' : 'sent';
  }

  /** Applies the bank's word about a payout: post the hold, or void it and return the funds. Idempotent. */
  async function applyPayoutState(payoutId: string, state: ChannelAsyncState, fromSend = false): Promise<repo.PayoutRow> {
    return transact(db, async (tx) => {
      const p = await repo.findPayout(tx, payoutId, true);
      if (!p) throw settleErrors.settlementNotFound(`no payout ${payoutId}`);
      if (p.state === 'success' || p.state === 'failed') return p;
      if (state.status === 'processing' || state.status === 'not_found') {
        if (fromSend || state.channelNo) {
          const f = { state: 'sent' as const, attempts: p.attempts + (fromSend ? 1 : 0), channel_no: state.channelNo ?? p.channel_no };
          await repo.updatePayout(tx, payoutId, f);
          return { ...p, ...f };
        }
        return p;
      }
      const succeeded = state.status === 'success';
      await postings.payoutSettled(tx, payoutId, succeeded);
      const f = succeeded
        ? { state: 'success' as const, channel_no: state.channelNo ?? p.channel_no, finished_at: state.successAt ?? now(), attempts: p.attempts + (fromSend ? 1 : 0) }
        : { state: 'failed' as const, channel_no: state.channelNo ?? p.channel_no, err_code: state.errCode ?? 'PAYOUT_FAILED', err_msg: state.errMsg, finished_at: now(), attempts: p.attempts + (fromSend ? 1 : 0) };
      await repo.updatePayout(tx, payoutId, f);
      await repo.setSettlementState(tx, p.settlement_id, succeeded ? 'paid' : 'payout_failed');
      // A failed payout's money is the party's again, available to the next run (from its batch's date on).
      if (!succeeded) await repo.insertEntries(tx, [{ party_id: p.party_id, kind: 'payout_return', ref: payoutId, amount_fen: p.amount_fen, available_on: await repo.payoutSettleDate(tx, payoutId) }]);
      return { ...p, ...f };
    });
  }

  /**
   * Asks the bank about the open payouts due on their check schedule (at most `limit`,
   * a bounded number at once; with `olderThanS`, also every open one created that long
   * ago); resends (same id) those it never saw.
   */
  async function pollPayouts(limit = 200, olderThanS?: number): Promise<number> {
    const at = now();
    const forceBefore = olderThanS === undefined ? null : new Date(at.getTime() - olderThanS * 1000);
    const open = await repo.claimDuePayouts(db.kysely, { now: at, limit, forceBefore });
    let settled = 0;
    await forEachBounded(open, DISPATCH_CONCURRENCY, async (p) => {
      const adapter = adapterFor(p.if_code);
      if (!adapter) return;
      const state = await adapter.queryTransfer(p.payout_id);
      if (state.status === 'not_found') {
        await send(p);
        return;
      }
      const after = await applyPayoutState(p.payout_id, state);
      if (after.state === 'success' || after.state === 'failed') settled += 1;
    }, (p, error) => {
      if (!(error instanceof ChannelUnavailable)) options.log?.('payout check failed', { payoutId: p.payout_id, err: String(error) });
    });
    return settled;
  }

  /** The daily job: settle today, then send the payouts. */
  async function runAndPay(day: string): Promise<RunResult> {
    const result = await run(day);
    return { ...result, payouts: await dispatchPayouts() };
  }

  // --- statements -------------------------------------------------------------------------

  async function statement(partyId: string, from: string, to: string) {
    if (!isValidDate(from) || !isValidDate(to) || from > to) throw settleErrors.dateInvalid('from and to must be dates YYYY-MM-DD with from ≤ to');
    const party = await repo.findParty(db.kysely, partyId);
    if (!party) throw settleErrors.partyNotFound(`结算对象不存在 / no settlement party ${partyId}`);
    const opening = await repo.sumEntriesBefore(db.kysely, partyId, from);
    const rows = await repo.listEntries(db.kysely, partyId, from, to, STATEMENT_ROWS_MAX + 1);
    if (rows.length > STATEMENT_ROWS_MAX) throw settleErrors.invalidParam(`more than ${STATEMENT_ROWS_MAX} rows: ask for a shorter period`);
    const totals: Record<string, bigint> = {};
    let sum = 0n;
    for (const r of rows) {
      totals[r.kind] = (totals[r.kind] ?? 0n) + r.amount_fen;
      sum += r.amount_fen;
    }
    return { party, from, to, openingFen: opening, closingFen: opening + sum, totals, rows };
  }

  return {
    /** Set-wise reads for loss prevention (src/risk). */
    reads: {
      payoutsWithSettlementsSince: (since: Date, limit: number) => repo.payoutsWithSettlementsSince(db.kysely, since, limit),
      stuckPayouts: (now: Date, openMaxS: number, limit: number) => repo.stuckPayouts(db.kysely, now, openMaxS, limit),
    },
    loadCalendar, calendar: () => calendar, intentOf, onPaid, onRefunded, holds, setFeeRule, setChannelCost, configureParty,
    setCalendarOverrides, releaseManual, run, runAndPay, confirm, dispatchPayouts, applyPayoutState, pollPayouts, statement,
    checkDate, requireMerchant,
  };
}

export type { DayKind };
