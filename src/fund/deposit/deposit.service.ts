// Deposits (交存): bills per unit, payment through the payment center (one pay order per
// bill or per developer batch, keyed FB-<billId>-<n> / FT-<batchId>-<n>), bank counter
// and transfer entries, top-ups, refunds and household balances.
//
// Exactly once: a bill is credited by the ledger transfer `fund:dep:<billId>`, posted
// only while the bill is locked and still unpaid, in the same transaction that marks it
// paid (for online payments that is the payment center's success transaction, through
// onPaid). A second pay order for a paid bill is recorded as a duplicate and its money
// stays on the fund merchant's pending account for a payment-center refund.
import { transact, type Database, type Tx } from '../../platform/db.ts';
import { assert } from '../../platform/assert.ts';
import { AppError, badRequest, notFound } from '../../platform/errors.ts';
import { isRate, applyRate } from '../../platform/money.ts';
import { cstDate } from '../../platform/time.ts';
import { TRANSFER_FLAGS, type Ledger, type TransferInput, type TransferResultCode } from '../../ledger/index.ts';
import type { PaymentCenter, PayOrderRow } from '../../payment/index.ts';
import { PAY_STATE, LEDGER_CNY, accountIds } from '../../payment/index.ts';
import { FUND_TRANSFER_CODE, ensureFundAccounts, ensureHouseholdAccounts, fundAccountIds } from '../accounts.ts';
import { forbidden, requireUnit, type Principal } from '../access.ts';
import * as reg from '../register/register.repo.ts';
import { fundErrors, newId } from '../register/register.service.ts';
import * as repo from './deposit.repo.ts';
import { belowThreshold, depositAmount, topUpByDifference, type Basis, type Standard } from './formula.ts';
import { receiptNo } from '../receipt/receipt.ts';

/** Units per bill-generation call, bills per batch, rows per listing. */
export const BILL_UNITS_MAX = 2000;
export const BATCH_BILLS_MAX = 2000;
export const LIST_MAX = 5000;
const ORDER_EXPIRE_S = 7200;
const ORDER_REUSE_MARGIN_MS = 120_000;
const ATTEMPTS_MAX = 50;

const MCH_ORDER_BILL = /^FB-(b_[0-9a-f]{16})-(\d{1,3})$/;
const MCH_ORDER_BATCH = /^FT-(t_[0-9a-f]{16})-(\d{1,3})$/;

export const depositErrors = {
  billNotFound: (id: string) => notFound('FUND_BILL_NOT_FOUND', `缴款通知书不存在 / no bill ${id}`),
  billPaid: (id: string) => new AppError('FUND_BILL_PAID', 409, `缴款通知书 ${id} 已缴清 / bill ${id} is already paid`),
  billCancelled: (id: string) => new AppError('FUND_BILL_CANCELLED', 409, `缴款通知书 ${id} 已作废 / bill ${id} was cancelled`),
  billInBatch: (id: string, batchId: string) => new AppError('FUND_BILL_IN_BATCH', 409, `缴款通知书 ${id} 在开发企业批量缴款 ${batchId} 中 / bill ${id} is in the developer's batch ${batchId}`),
};

export type DepositService = ReturnType<typeof createDepositService>;

export interface DepositDeps {
  db: Database;
  ledger: Ledger;
  payment: PaymentCenter;
  publicUrl: string;
}

export function createDepositService(deps: DepositDeps) {
  const { db, ledger, payment } = deps;
  let merchant: { mch_no: string; app_id: string } | null = null;

  /** The fund center's merchant at the payment center, created on first use. */
  async function fundMerchant(): Promise<{ mch_no: string; app_id: string }> {
    if (merchant) return merchant;
    let row = await repo.findFundMerchant(db.kysely);
    if (!row) {
      const created = await payment.merchants.createMerchant({ name: '住宅专项维修资金管理中心 / Maintenance fund center' });
      await repo.insertFundMerchant(db.kysely, created.mchNo, created.appId);
      row = await repo.findFundMerchant(db.kysely);
    }
    merchant = row as { mch_no: string; app_id: string };
    return merchant;
  }

  async function apply(tx: Tx, transfers: TransferInput[]): Promise<TransferResultCode[]> {
    return ledger.applyInTransaction(tx, transfers);
  }
  const transfer = (id: string, debit: string, credit: string, amount: bigint, code: number, ref: string, flags = 0): TransferInput => ({
    id, debit_account_id: debit, credit_account_id: credit, amount, ledger: LEDGER_CNY, code, flags, pending_id: null, timeout_s: 0, ref, metadata: null,
  });

  // --- bills -----------------------------------------------------------------------------

  /** First-deposit bills for the units matching the filter (a unit with a live bill keeps it). */
  async function generateFirstBills(f: { estateId?: string; buildingId?: string; unitIds?: string[] }, actor: string) {
    if (!f.estateId && !f.buildingId && !f.unitIds) throw badRequest('FUND_PARAM_INVALID', '须指定 estateId、buildingId 或 unitIds / give estateId, buildingId or unitIds');
    const units = await reg.listUnits(db.kysely, f, BILL_UNITS_MAX + 1);
    if (units.length > BILL_UNITS_MAX) throw badRequest('FUND_TOO_MANY', `一次最多 ${BILL_UNITS_MAX} 户，请按幢生成 / at most ${BILL_UNITS_MAX} units per call; generate per building`);
    if (units.length === 0) throw notFound('FUND_UNIT_NOT_FOUND', '没有符合条件的房屋 / no units match');
    const standards = new Map<string, Map<string, Standard>>();
    for (const city of new Set(units.map((u) => u.city))) {
      standards.set(city, new Map((await reg.listStandards(db.kysely, city)).map((s) => [s.building_type,
        s.method === 'area' ? { method: 'area', fenPerM2: s.fen_per_m2 as bigint } as Standard : { method: 'price', rate: s.rate as string } as Standard])));
    }
    const missing = [...new Set(units.filter((u) => !standards.get(u.city)?.has(u.building_type)).map((u) => `${u.city}/${u.building_type}`))];
    if (missing.length > 0) throw new AppError('FUND_STANDARD_MISSING', 400, `以下城市/建筑类型没有交存标准：${missing.join(', ')} / no deposit standard for ${missing.join(', ')}; set it with PUT /v1/fund/cities/:city/standards/:buildingType`);
    const bills: Array<Pick<repo.BillRow, 'id' | 'unit_id' | 'estate_id' | 'city' | 'kind' | 'amount_fen' | 'basis'>> = [];
    const skipped: Array<{ unitId: string; reason: string }> = [];
    for (const u of units) {
      const computed = depositAmount(u, standards.get(u.city)?.get(u.building_type) as Standard);
      if (!computed) {
        skipped.push({ unitId: u.id, reason: '按房价交存但未登记房价 / the price method needs the unit price; edit the unit' });
        continue;
      }
      bills.push({ id: newId('b'), unit_id: u.id, estate_id: u.estate_id, city: u.city, kind: 'first_deposit', amount_fen: computed.amountFen, basis: computed.basis });
    }
    const created = await transact(db, async (tx) => {
      for (const city of new Set(units.map((u) => u.city))) await ensureFundAccounts(tx, ledger, city);
      await ensureHouseholdAccounts(tx, ledger, units.map((u) => u.id));
      const ids = await repo.insertBills(tx, bills);
      await reg.audit(tx, actor, 'bills.generate', f.estateId ? `estate:${f.estateId}` : f.buildingId ? `building:${f.buildingId}` : 'units', { created: ids.length });
      return ids;
    });
    const createdSet = new Set(created);
    return { created: bills.filter((b) => createdSet.has(b.id)), existing: bills.length - created.length, skipped };
  }

  async function getBill(id: string): Promise<repo.BillRow> {
    const bill = await repo.findBill(db.kysely, id);
    if (!bill) throw depositErrors.billNotFound(id);
    return bill;
  }

  async function openBatchOf(q: Tx | Database['kysely'], bill: repo.BillRow): Promise<string | null> {
    if (!bill.batch_id) return null;
    const batch = await repo.findBatch(q, bill.batch_id);
    return batch && batch.state === 'open' ? batch.id : null;
  }

  /** A pay order for the bill on the fund merchant's H5 cashier (an open one is reused). */
  async function payBill(billId: string, principal: Principal) {
    const bill = await getBill(billId);
    const unit = await reg.findUnit(db.kysely, bill.unit_id);
    assert(unit, 'a bill has its unit');
    requireUnit(principal, unit);
    // Only the house's owner (their own units) and the fund center start a payment; property companies and committees read.
    if (principal.role !== 'owner' && principal.role !== 'center') throw forbidden('只有业主本人或维修资金中心可以发起缴款 / only the owner or the fund center may start a payment');
    if (bill.state === 'paid') throw depositErrors.billPaid(billId);
    if (bill.state === 'cancelled') throw depositErrors.billCancelled(billId);
    const batchId = await openBatchOf(db.kysely, bill);
    if (batchId) throw depositErrors.billInBatch(billId, batchId);
    const place = `${unit.estate_name} ${unit.building_name}幢${unit.stair}单元${unit.room_no}`;
    const subject = bill.kind === 'first_deposit' ? '住宅专项维修资金 首期交存' : '住宅专项维修资金 续筹';
    return orderFor({ kind: 'bill', id: billId, amountFen: bill.amount_fen, subject, body: `${place} · ${bill.basis.text}`.slice(0, 200), returnUrl: `${deps.publicUrl}/h5/fund/units/${unit.id}` });
  }

  async function orderFor(target: { kind: 'bill' | 'batch'; id: string; amountFen: bigint; subject: string; body: string; returnUrl: string }) {
    const m = await fundMerchant();
    const links = await repo.linksOf(db.kysely, target.kind === 'bill' ? { billId: target.id } : { batchId: target.id });
    const last = links.at(-1);
    if (last) {
      const order = await payment.orders.findForMerchant(m.mch_no, { payOrderId: last.pay_order_id });
      const open = (order.state === PAY_STATE.created || order.state === PAY_STATE.paying) && order.expired_at.getTime() > Date.now() + ORDER_REUSE_MARGIN_MS;
      if (open) return { payOrderId: order.pay_order_id, cashierUrl: `${deps.publicUrl}/cashier/${order.pay_order_id}`, amountFen: order.amount };
    }
    if (links.length >= ATTEMPTS_MAX) throw new AppError('FUND_TOO_MANY_ATTEMPTS', 409, '支付尝试次数过多，请到柜台缴款 / too many payment attempts for this bill; pay at the bank counter');
    const mchOrderNo = `${target.kind === 'bill' ? 'FB' : 'FT'}-${target.id}-${links.length + 1}`;
    const order = await payment.orders.unifiedOrder({
      mchNo: m.mch_no, appId: m.app_id, mchOrderNo, wayCode: 'QR_CASHIER', amount: target.amountFen, currency: 'cny',
      subject: target.subject, body: target.body, clientIp: null, notifyUrl: null, returnUrl: target.returnUrl,
      expiredTime: ORDER_EXPIRE_S, channelExtra: null, extParam: null, divisionMode: 0,
    });
    await repo.insertPayLink(db.kysely, { pay_order_id: order.pay_order_id, mch_order_no: mchOrderNo, bill_id: target.kind === 'bill' ? target.id : null, batch_id: target.kind === 'batch' ? target.id : null, amount_fen: order.amount });
    return { payOrderId: order.pay_order_id, cashierUrl: `${deps.publicUrl}/cashier/${order.pay_order_id}`, amountFen: order.amount };
  }

  /** Runs inside the payment center's success transaction (PaymentOptions.onPaid). */
  /** True when the order's merchant is the fund center's own: its money belongs to households, not to a merchant to settle. */
  async function isFundMerchant(tx: Tx, mchNo: string): Promise<boolean> {
    const m = merchant ?? (await repo.findFundMerchant(tx));
    return m !== null && m !== undefined && m.mch_no === mchNo;
  }

  async function onPaid(tx: Tx, order: PayOrderRow): Promise<void> {
    // Cheap checks first: this runs for every payment of every merchant.
    const billMatch = MCH_ORDER_BILL.exec(order.mch_order_no);
    const batchMatch = billMatch ? null : MCH_ORDER_BATCH.exec(order.mch_order_no);
    if (!billMatch && !batchMatch) return;
    const m = merchant ?? (await repo.findFundMerchant(tx));
    if (!m || order.mch_no !== m.mch_no) return;
    await repo.insertPayLink(tx, { pay_order_id: order.pay_order_id, mch_order_no: order.mch_order_no, bill_id: billMatch ? billMatch[1] : null, batch_id: batchMatch ? batchMatch[1] : null, amount_fen: order.amount });
    const paidAt = order.success_at ?? new Date();
    const source = accountIds.merchantPending(m.mch_no);
    if (billMatch) {
      const bill = await repo.findBill(tx, billMatch[1], true);
      assert(bill, `bill ${billMatch[1]} of pay order ${order.pay_order_id} exists`);
      assert(bill.amount_fen === order.amount, `pay order ${order.pay_order_id} amount equals bill ${bill.id}`);
      if (bill.state !== 'unpaid') {
        await repo.setLinkOutcome(tx, order.pay_order_id, 'duplicate');
        return;
      }
      await creditBills(tx, [bill], source, FUND_TRANSFER_CODE.deposit, 'payment', order.pay_order_id, paidAt);
      await repo.setLinkOutcome(tx, order.pay_order_id, 'credited');
      return;
    }
    const batch = await repo.findBatch(tx, (batchMatch as RegExpExecArray)[1], true);
    assert(batch, `batch of pay order ${order.pay_order_id} exists`);
    assert(batch.amount_fen === order.amount, `pay order ${order.pay_order_id} amount equals batch ${batch.id}`);
    const bills = await repo.findBills(tx, batch.bill_ids, true);
    const unpaid = bills.filter((b) => b.state === 'unpaid');
    if (unpaid.length > 0) await creditBills(tx, unpaid, source, FUND_TRANSFER_CODE.deposit, 'batch', order.pay_order_id, paidAt);
    if (batch.state !== 'paid') await repo.setBatchState(tx, batch.id, 'paid', paidAt);
    await repo.setLinkOutcome(tx, order.pay_order_id, unpaid.length === bills.length && batch.state === 'open' ? 'credited' : 'duplicate');
  }

  /** Credits each bill's household principal and marks the bills paid (caller holds the bill locks). */
  async function creditBills(tx: Tx, bills: repo.BillRow[], debitAccount: string, code: number, via: 'payment' | 'batch' | 'counter', ref: string, paidAt: Date) {
    assert(bills.length <= BATCH_BILLS_MAX, 'bills per credit within limit');
    await ensureHouseholdAccounts(tx, ledger, [...new Set(bills.map((b) => b.unit_id))]);
    const results = await apply(tx, bills.map((b) => transfer(`fund:dep:${b.id}`, debitAccount, fundAccountIds.principal(b.unit_id), b.amount_fen, code, b.id)));
    results.forEach((r, i) => assert(r === 'ok', `deposit posting for bill ${bills[i].id}: ${r}`));
    const seqs = await repo.nextReceiptNos(tx, bills.length);
    const year = cstDate(paidAt).slice(0, 4);
    await repo.markBillsPaid(tx, bills.map((b) => b.id), via, ref, paidAt, seqs.map((s) => receiptNo(year, s)));
  }

  /** 银行柜台/转账: an operator enters a payment against a bill; idempotent by the bank reference. */
  async function counterPayment(billId: string, input: { bankRef: string; amountFen: bigint; channel: 'counter' | 'transfer' }, actor: string) {
    if (!/^[A-Za-z0-9_.:-]{4,64}$/.test(input.bankRef)) throw badRequest('FUND_PARAM_INVALID', '银行流水号须为 4–64 位字母数字 / bankRef must be 4–64 letters, digits, _ . : -');
    return transact(db, async (tx) => {
      const prior = await repo.findCounter(tx, input.bankRef);
      if (prior) {
        if (prior.bill_id !== billId || prior.amount_fen !== input.amountFen) {
          throw new AppError('FUND_BANK_REF_USED', 409, `银行流水号 ${input.bankRef} 已用于缴款通知书 ${prior.bill_id} / bank reference already entered for bill ${prior.bill_id} (amount ${prior.amount_fen})`);
        }
        return { bill: (await repo.findBill(tx, billId)) as repo.BillRow, replayed: true };
      }
      const bill = await repo.findBill(tx, billId, true);
      if (!bill) throw depositErrors.billNotFound(billId);
      if (bill.state === 'paid') throw depositErrors.billPaid(billId);
      if (bill.state === 'cancelled') throw depositErrors.billCancelled(billId);
      const batchId = await openBatchOf(tx, bill);
      if (batchId) throw depositErrors.billInBatch(billId, batchId);
      if (input.amountFen !== bill.amount_fen) throw new AppError('FUND_AMOUNT_MISMATCH', 400, `金额须等于缴款通知书金额 ${bill.amount_fen} 分 / the amount must equal the bill's ${bill.amount_fen} fen`);
      await ensureFundAccounts(tx, ledger, bill.city);
      await repo.insertCounter(tx, { bank_ref: input.bankRef, bill_id: billId, amount_fen: input.amountFen, channel: input.channel, operator: actor });
      await creditBills(tx, [bill], fundAccountIds.bank(bill.city), FUND_TRANSFER_CODE.counter_deposit, 'counter', input.bankRef, new Date());
      await reg.audit(tx, actor, 'bill.counter_payment', `bill:${billId}`, { bankRef: input.bankRef, amountFen: input.amountFen, channel: input.channel });
      return { bill: (await repo.findBill(tx, billId)) as repo.BillRow, replayed: false };
    });
  }

  async function cancelBill(billId: string, actor: string) {
    return transact(db, async (tx) => {
      const bill = await repo.findBill(tx, billId, true);
      if (!bill) throw depositErrors.billNotFound(billId);
      if (bill.state === 'paid') throw depositErrors.billPaid(billId);
      const batchId = await openBatchOf(tx, bill);
      if (batchId) throw depositErrors.billInBatch(billId, batchId);
      await repo.cancelBill(tx, billId);
      await reg.audit(tx, actor, 'bill.cancel', `bill:${billId}`, {});
      return (await repo.findBill(tx, billId)) as repo.BillRow;
    });
  }

  // --- developer batch -------------------------------------------------------------------

  /** One pay order for many bills (the developer's unsold units by default). */
  async function createBatch(input: { estateId: string; payer: string; billIds?: string[] }, actor: string) {
    const batch = await transact(db, async (tx) => {
      const estate = await reg.findEstate(tx, input.estateId);
      if (!estate) throw fundErrors.estateNotFound(input.estateId);
      let ids = input.billIds;
      if (!ids) {
        const unsold = new Set((await reg.listUnits(tx, { estateId: input.estateId }, LIST_MAX)).filter((u) => !u.sold).map((u) => u.id));
        ids = (await repo.listBills(tx, { estateId: input.estateId, state: 'unpaid', kind: 'first_deposit' }, LIST_MAX)).filter((b) => unsold.has(b.unit_id)).map((b) => b.id);
      }
      ids = [...new Set(ids)];
      if (ids.length === 0) throw new AppError('FUND_NOTHING_TO_PAY', 409, '没有待缴的缴款通知书 / no unpaid bills to put in a batch');
      if (ids.length > BATCH_BILLS_MAX) throw badRequest('FUND_TOO_MANY', `一批最多 ${BATCH_BILLS_MAX} 张 / at most ${BATCH_BILLS_MAX} bills per batch`);
      const bills = await repo.findBills(tx, ids, true);
      if (bills.length !== ids.length) throw depositErrors.billNotFound(ids.find((id) => !bills.some((b) => b.id === id)) as string);
      for (const b of bills) {
        if (b.estate_id !== input.estateId) throw badRequest('FUND_PARAM_INVALID', `缴款通知书 ${b.id} 不属于该小区 / bill ${b.id} is not of estate ${input.estateId}`);
        if (b.state === 'paid') throw depositErrors.billPaid(b.id);
        if (b.state === 'cancelled') throw depositErrors.billCancelled(b.id);
        const open = await openBatchOf(tx, b);
        if (open) throw depositErrors.billInBatch(b.id, open);
      }
      const id = newId('t');
      const amount = bills.reduce((s, b) => s + b.amount_fen, 0n);
      await repo.insertBatch(tx, { id, estate_id: input.estateId, payer: input.payer, amount_fen: amount, bill_count: bills.length, bill_ids: bills.map((b) => b.id) });
      await repo.setBillsBatch(tx, bills.map((b) => b.id), id);
      await reg.audit(tx, actor, 'batch.create', `estate:${input.estateId}`, { batchId: id, bills: bills.length, amountFen: amount });
      return { id, amount, count: bills.length, estateName: estate.name };
    });
    const order = await orderFor({ kind: 'batch', id: batch.id, amountFen: batch.amount, subject: '住宅专项维修资金 开发企业批量交存', body: `${batch.estateName} · ${batch.count} 户 · ${input.payer}`.slice(0, 200), returnUrl: `${deps.publicUrl}/h5/fund` });
    return { batchId: batch.id, billCount: batch.count, ...order };
  }

  async function getBatch(id: string) {
    const batch = await repo.findBatch(db.kysely, id);
    if (!batch) throw notFound('FUND_BATCH_NOT_FOUND', `批量缴款不存在 / no batch ${id}`);
    return batch;
  }

  /** A new pay order for an open batch whose last one expired. */
  async function payBatch(id: string) {
    const batch = await getBatch(id);
    if (batch.state !== 'open') throw new AppError('FUND_BATCH_CLOSED', 409, `批量缴款 ${id} 状态为 ${batch.state} / batch ${id} is ${batch.state}`);
    return orderFor({ kind: 'batch', id, amountFen: batch.amount_fen, subject: '住宅专项维修资金 开发企业批量交存', body: `${batch.bill_count} 户 · ${batch.payer}`.slice(0, 200), returnUrl: `${deps.publicUrl}/h5/fund` });
  }

  // --- balances, top-up, refund ------------------------------------------------------------

  async function balances(f: { estateId?: string; buildingId?: string; unitIds?: string[] }, limit = LIST_MAX, afterId = '') {
    return repo.householdBalances(db.kysely, f, Math.min(limit, LIST_MAX), afterId);
  }

  /** Households of an estate whose principal is below the city's threshold of their first deposit. */
  async function topUpCandidates(estateId: string) {
    const estate = await reg.findEstate(db.kysely, estateId);
    if (!estate) throw fundErrors.estateNotFound(estateId);
    const config = await reg.findCityConfig(db.kysely, estate.city);
    if (!config) throw fundErrors.cityUnknown(estate.city);
    const rows = await repo.householdBalances(db.kysely, { estateId }, LIST_MAX);
    const first = await repo.firstDepositsPaid(db.kysely, rows.map((r) => r.unit_id));
    const out = [];
    for (const r of rows) {
      const firstFen = first.get(r.unit_id);
      if (firstFen === undefined) continue;
      if (!belowThreshold(firstFen, r.principal_fen, config.top_up_ratio_bp)) continue;
      out.push({ unitId: r.unit_id, firstDepositFen: firstFen, principalFen: r.principal_fen, thresholdRatioBp: config.top_up_ratio_bp, shortfallFen: topUpByDifference(firstFen, r.principal_fen) });
    }
    return { city: estate.city, ratioBp: config.top_up_ratio_bp, households: out };
  }

  /** 续筹 bills: by difference (first deposit − principal) or by standard × coefficient. */
  async function generateTopUps(input: { estateId: string; mode: 'difference' | 'standard'; coefficient?: string }, actor: string) {
    if (input.mode === 'standard' && !(isRate(input.coefficient, '10') && !/^0+(\.0+)?$/.test(input.coefficient as string))) {
      throw badRequest('FUND_PARAM_INVALID', '按标准续筹须给 coefficient（如 "0.5"，不超过 10）/ the standard mode needs coefficient, a decimal such as "0.5" (at most 10)');
    }
    const { households } = await topUpCandidates(input.estateId);
    const units = new Map((await reg.findUnits(db.kysely, households.map((h) => h.unitId))).map((u) => [u.id, u]));
    const standards = new Map<string, Standard>();
    const bills: Array<Pick<repo.BillRow, 'id' | 'unit_id' | 'estate_id' | 'city' | 'kind' | 'amount_fen' | 'basis'>> = [];
    const skipped: Array<{ unitId: string; reason: string }> = [];
    for (const h of households) {
      const u = units.get(h.unitId) as reg.UnitView;
      let amount: bigint;
      let basis: Basis;
      if (input.mode === 'difference') {
        amount = h.shortfallFen;
        basis = { method: 'difference', firstDepositFen: h.firstDepositFen.toString(), principalFen: h.principalFen.toString(), rounding: 'half_up', text: `按差额：首期 ${h.firstDepositFen} 分 − 本金余额 ${h.principalFen} 分 / first deposit − principal balance` };
      } else {
        if (standards.size === 0) for (const s of await reg.listStandards(db.kysely, u.city)) standards.set(s.building_type, s.method === 'area' ? { method: 'area', fenPerM2: s.fen_per_m2 as bigint } : { method: 'price', rate: s.rate as string });
        const std = standards.get(u.building_type);
        const computed = std ? depositAmount(u, std) : null;
        if (!computed) {
          skipped.push({ unitId: u.id, reason: '没有适用的交存标准或房价 / no standard or price for this unit' });
          continue;
        }
        amount = applyRate(computed.amountFen, input.coefficient as string, 'half_up');
        basis = { ...computed.basis, method: 'standard_coefficient', coefficient: input.coefficient, text: `按标准：${computed.basis.text} × 系数 ${input.coefficient}` };
      }
      if (amount <= 0n) continue;
      bills.push({ id: newId('b'), unit_id: u.id, estate_id: u.estate_id, city: u.city, kind: 'top_up', amount_fen: amount, basis });
    }
    const created = await transact(db, async (tx) => {
      const ids = await repo.insertBills(tx, bills);
      await reg.audit(tx, actor, 'bills.top_up', `estate:${input.estateId}`, { mode: input.mode, coefficient: input.coefficient ?? null, created: ids.length });
      return new Set(ids);
    });
    return { created: bills.filter((b) => created.has(b.id)), existing: bills.length - created.size, skipped };
  }

  /** 退还: moves a household's balance out to the payee through the fund's bank account. */
  async function refund(unitId: string, input: { requestKey: string; reason: repo.RefundRow['reason']; note: string; payee: string; principalFen?: bigint }, actor: string) {
    if (!/^[A-Za-z0-9_.:-]{4,64}$/.test(input.requestKey)) throw badRequest('FUND_PARAM_INVALID', 'requestKey 须为 4–64 位字母数字 / requestKey must be 4–64 letters, digits, _ . : -');
    const partial = input.reason === 'duplicate_payment' || input.reason === 'mistaken_payment';
    if (partial && !(typeof input.principalFen === 'bigint' && input.principalFen > 0n)) throw badRequest('FUND_PARAM_INVALID', '多缴/误缴退还须给 principalFen（正整数分）/ a duplicate or mistaken payment refund needs principalFen > 0');
    if (!partial && input.principalFen !== undefined) throw badRequest('FUND_PARAM_INVALID', '拆迁/退房退还全部余额，不能指定金额 / demolition and cancelled sales refund the whole balance; omit principalFen');
    return transact(db, async (tx) => {
      const prior = await repo.findRefundByKey(tx, input.requestKey);
      if (prior) {
        if (prior.unit_id !== unitId || prior.reason !== input.reason) throw new AppError('FUND_REQUEST_KEY_USED', 409, `requestKey 已用于房屋 ${prior.unit_id} / requestKey already used for another refund`);
        return { refund: prior, replayed: true };
      }
      const unit = await reg.findUnit(tx, unitId, true);
      if (!unit) throw fundErrors.unitNotFound(unitId);
      const [bal] = await repo.householdBalances(tx, { unitIds: [unitId] }, 1);
      const availablePrincipal = bal.principal_fen - bal.principal_held_fen;
      const availableInterest = bal.interest_fen - bal.interest_held_fen;
      const principal = partial ? (input.principalFen as bigint) : availablePrincipal;
      const interest = partial ? 0n : availableInterest;
      if (principal > availablePrincipal) throw new AppError('FUND_BALANCE_SHORT', 409, `本金可用余额 ${availablePrincipal} 分不足 / the available principal is ${availablePrincipal} fen`);
      if (principal <= 0n && interest <= 0n) throw new AppError('FUND_NOTHING_TO_REFUND', 409, '分户账没有可退余额 / the household account has nothing to refund');
      if (!partial && (bal.principal_held_fen > 0n || bal.interest_held_fen > 0n)) throw new AppError('FUND_BALANCE_HELD', 409, '分户账有冻结中的支用，先完成或撤销 / part of the balance is held for a repair; settle it first');
      const id = newId('r');
      await ensureFundAccounts(tx, ledger, unit.city);
      const transfers: TransferInput[] = [];
      if (principal > 0n) transfers.push(transfer(`fund:ref:${id}:p`, fundAccountIds.principal(unitId), fundAccountIds.bank(unit.city), principal, FUND_TRANSFER_CODE.refund, id));
      if (interest > 0n) transfers.push(transfer(`fund:ref:${id}:i`, fundAccountIds.interest(unitId), fundAccountIds.bank(unit.city), interest, FUND_TRANSFER_CODE.refund, id));
      if (transfers.length === 2) transfers[0].flags = TRANSFER_FLAGS.linked;
      const results = await apply(tx, transfers);
      if (results.some((r) => r === 'exceeds_credits' || r === 'linked_event_failed')) throw new AppError('FUND_BALANCE_SHORT', 409, '余额已变化，请重试 / the balance changed; read it again and retry');
      results.forEach((r, i) => assert(r === 'ok', `refund posting ${transfers[i].id}: ${r}`));
      const row: Omit<repo.RefundRow, 'created_at'> = { id, request_key: input.requestKey, unit_id: unitId, reason: input.reason, note: input.note, principal_fen: principal, interest_fen: interest, payee: input.payee, operator: actor };
      await repo.insertRefund(tx, row);
      await reg.audit(tx, actor, 'unit.refund', `unit:${unitId}`, { refundId: id, reason: input.reason, principalFen: principal, interestFen: interest, payee: input.payee, note: input.note });
      return { refund: (await repo.findRefundByKey(tx, input.requestKey)) as repo.RefundRow, replayed: false };
    });
  }

  return {
    fundMerchant, generateFirstBills, getBill, payBill, onPaid, isFundMerchant, counterPayment, cancelBill, createBatch, getBatch, payBatch,
    balances, topUpCandidates, generateTopUps, refund,
  };
}
